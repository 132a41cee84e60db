"""An ML process for the runtimes tests: imports onnxruntime, loads and holds a model open,
listens on all interfaces, prints its port, and waits to be killed."""
import socket
import sys
import time

import onnxruntime as ort

model = sys.argv[1]
held = open(model, "rb")
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", 0))
server.listen()
print(server.getsockname()[1], flush=True)
time.sleep(600)
