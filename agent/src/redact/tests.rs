//! The redaction battery: a table of command lines, environment values and texts with the
//! exact output each must give (harmless ones unchanged), and property tests: a random secret
//! in any supported shape never reaches the output, harmless command lines round-trip.

use proptest::prelude::*;

use super::*;

const R: &str = MARKER;

/// Command lines: input → expected output, argument by argument.
const ARGV: &[(&[&str], &[&str])] = &[
    // Harmless command lines stay as they are.
    (&["vllm", "serve", "/srv/m.gguf", "--port", "8080"], &["vllm", "serve", "/srv/m.gguf", "--port", "8080"]),
    (&["llama-server", "--port", "8080", "--model", "/srv/m.gguf"], &["llama-server", "--port", "8080", "--model", "/srv/m.gguf"]),
    (&["x", "--max-tokens", "512"], &["x", "--max-tokens", "512"]),
    (&["x", "--max-new-tokens=512"], &["x", "--max-new-tokens=512"]),
    (&["x", "--token-limit", "4096"], &["x", "--token-limit", "4096"]),
    (&["java", "-Xmx4g", "-jar", "a.jar"], &["java", "-Xmx4g", "-jar", "a.jar"]),
    (&["x", "--host", "0.0.0.0", "--port", "11434"], &["x", "--host", "0.0.0.0", "--port", "11434"]),
    (&["ollama", "serve"], &["ollama", "serve"]),
    (&["node", "--inspect", "server.js"], &["node", "--inspect", "server.js"]),
    (&["x", "--tensor-parallel-size", "2", "--dtype", "bfloat16"], &["x", "--tensor-parallel-size", "2", "--dtype", "bfloat16"]),
    (&["x", "--trust-remote-code"], &["x", "--trust-remote-code"]),
    (&["x", "--no-auth", "--port", "8080"], &["x", "--no-auth", "--port", "8080"]),
    (&["x", "--disable-auth"], &["x", "--disable-auth"]),
    (&["x", "--use-auth-token", "--port", "1"], &["x", "--use-auth-token", "--port", "1"]),
    (&["x", "--auth", "none"], &["x", "--auth", "none"]),
    (&["x", "--password", "$DB_PASSWORD"], &["x", "--password", "$DB_PASSWORD"]),
    (&["x", "--api-key", "${env:OPENAI_API_KEY}"], &["x", "--api-key", "${env:OPENAI_API_KEY}"]),
    (&["x", "--ssl-keyfile", "/etc/ssl/key.pem"], &["x", "--ssl-keyfile", "/etc/ssl/key.pem"]),
    (&["x", "--ssl-key", "/etc/ssl/private/server.pem"], &["x", "--ssl-key", "/etc/ssl/private/server.pem"]),
    (&["x", "--api-key-file", "/run/secrets/k"], &["x", "--api-key-file", "/run/secrets/k"]),
    (&["x", "--ServerApp.token="], &["x", "--ServerApp.token="]),
    (&["x", "--password=", "--port=1"], &["x", "--password=", "--port=1"]),
    (&["x", "--user", "alice"], &["x", "--user", "alice"]),
    (&["x", "-p", "8080"], &["x", "-p", "8080"]),
    (&["mysql", "-p"], &["mysql", "-p"]),
    (&["x", "--token", "--port", "80"], &["x", "--token", "--port", "80"]),
    (&["x", "TOKENIZERS_PARALLELISM=false"], &["x", "TOKENIZERS_PARALLELISM=false"]),
    (&["x", "KEY_FILE=/etc/x.pem"], &["x", "KEY_FILE=/etc/x.pem"]),
    (&["x", "CUDA_VISIBLE_DEVICES=0,1"], &["x", "CUDA_VISIBLE_DEVICES=0,1"]),
    (&["docker", "run", "-e", "HF_HOME=/data/hf", "img"], &["docker", "run", "-e", "HF_HOME=/data/hf", "img"]),
    (&["x", "--model", "sk-learn-model"], &["x", "--model", "sk-learn-model"]),
    (&["x", "sk-learn"], &["x", "sk-learn"]),
    (&["x", "sk-Aaa0A0A0AaA0"], &["x", R]),
    (&["x", "/usr/lib/sk-something/long-path"], &["x", "/usr/lib/sk-something/long-path"]),
    (&["pip", "install", "scikit-learn==1.5.0"], &["pip", "install", "scikit-learn==1.5.0"]),
    (
        &["pip", "install", "torch==2.3.0", "--index-url", "https://download.pytorch.org/whl/cu121"],
        &["pip", "install", "torch==2.3.0", "--index-url", "https://download.pytorch.org/whl/cu121"],
    ),
    (&["x", "https://huggingface.co/org/model"], &["x", "https://huggingface.co/org/model"]),
    (&["x", "https://registry.npmjs.org/@types/node"], &["x", "https://registry.npmjs.org/@types/node"]),
    (&["x", "http://127.0.0.1:8000/v1/models"], &["x", "http://127.0.0.1:8000/v1/models"]),
    (&["x", "https://h:8443/path?email=a@b.com"], &["x", "https://h:8443/path?email=a@b.com"]),
    (&["x", "https://www.google.com/search?q=rust+key"], &["x", "https://www.google.com/search?q=rust+key"]),
    (&["x", "https://github.com/org/repo/hooks"], &["x", "https://github.com/org/repo/hooks"]),
    (&["x", "--keyring-provider", "auto"], &["x", "--keyring-provider", "auto"]),
    (&["x", "--monkey", "patch"], &["x", "--monkey", "patch"]),
    (&["curl", "-H", "Accept: application/json", "u"], &["curl", "-H", "Accept: application/json", "u"]),
    (&["curl", "-H", "X-Request-Source: cli", "u"], &["curl", "-H", "X-Request-Source: cli", "u"]),
    (
        &["python", "-m", "vllm.entrypoints.openai.api_server", "--model", "/m", "--host", "0.0.0.0", "--port", "8000"],
        &["python", "-m", "vllm.entrypoints.openai.api_server", "--model", "/m", "--host", "0.0.0.0", "--port", "8000"],
    ),
    (&["sh", "-c", "cd /srv && exec python serve.py --port 8000"], &["sh", "-c", "cd /srv && exec python serve.py --port 8000"]),
    (&["x", "-Dspring.datasource.url=jdbc:postgresql://h/db"], &["x", "-Dspring.datasource.url=jdbc:postgresql://h/db"]),
    (&["x", "--config", "{\"model\": \"m\", \"port\": 8000}"], &["x", "--config", "{\"model\": \"m\", \"port\": 8000}"]),
    // Options with secret names: `--opt value`, `--opt=value`, `-opt value`, `-Dname=value`.
    (&["vllm", "serve", "m", "--api-key", "s3cr3tvalue"], &["vllm", "serve", "m", "--api-key", R]),
    (&["x", "--api-key=s3cr3t"], &["x", "--api-key=<redacted>"]),
    (&["x", "--token", "abc"], &["x", "--token", R]),
    (&["x", "--hf-token", "hf_abcdefghijklmnopqrstuvwxyz012"], &["x", "--hf-token", R]),
    (&["x", "-token", "abc"], &["x", "-token", R]),
    (&["x", "-api-key=abc"], &["x", "-api-key=<redacted>"]),
    (&["x", "--ServerApp.token=tok123"], &["x", "--ServerApp.token=<redacted>"]),
    (&["java", "-Dpassword=hunter2", "-jar", "app.jar"], &["java", "-Dpassword=<redacted>", "-jar", "app.jar"]),
    (
        &["java", "-Djavax.net.ssl.trustStorePassword=changeit"],
        &["java", "-Djavax.net.ssl.trustStorePassword=<redacted>"],
    ),
    (
        &["x", "-Dspring.datasource.password=pw", "-Dserver.port=8080"],
        &["x", "-Dspring.datasource.password=<redacted>", "-Dserver.port=8080"],
    ),
    (&["x", "--session", "abc"], &["x", "--session", R]),
    (&["x", "--secret-key-base", "abcdef"], &["x", "--secret-key-base", R]),
    (&["x", "--client-secret", "cs"], &["x", "--client-secret", R]),
    (&["x", "--passphrase", "correct horse"], &["x", "--passphrase", R]),
    (&["x", "--api-keys", "k1,k2"], &["x", "--api-keys", R]),
    (&["x", "--headers", "Authorization=Bearer x"], &["x", "--headers", R]),
    (&["x", "--gradio-auth", "admin:pass123"], &["x", "--gradio-auth", R]),
    (&["x", "--api-auth=user:pw"], &["x", "--api-auth=<redacted>"]),
    (&["x", "--cookie", "session=abc123"], &["x", "--cookie", R]),
    (&["wget", "--http-password=pw", "u"], &["wget", "--http-password=<redacted>", "u"]),
    (&["x", "--authtoken", "2abcDEF"], &["x", "--authtoken", R]),
    (&["x", "--access-token=ya"], &["x", "--access-token=<redacted>"]),
    (&["x", "--db-passwords", "a,b"], &["x", "--db-passwords", R]),
    (&["x", "--env", "TOKEN=abc"], &["x", "--env", "TOKEN=<redacted>"]),
    (&["docker", "run", "-e", "API_KEY=abc123", "img"], &["docker", "run", "-e", "API_KEY=<redacted>", "img"]),
    (
        &["env", "HF_TOKEN=hf_abcdefghijklmnopqrstuvwxyz0123", "python", "x.py"],
        &["env", "HF_TOKEN=<redacted>", "python", "x.py"],
    ),
    (&["python3", "-c", "import os; print(1)", "--password", "p4ss"], &["python3", "-c", "import os; print(1)", "--password", R]),
    // curl-style user:password, tools whose short option is a password.
    (&["curl", "-u", "admin:hunter2", "https://h/x"], &["curl", "-u", "admin:<redacted>", "https://h/x"]),
    (&["curl", "-uadmin:hunter2", "https://h"], &["curl", "-uadmin:<redacted>", "https://h"]),
    (&["curl", "--user", "bob:pa55word", "h"], &["curl", "--user", "bob:<redacted>", "h"]),
    (&["curl", "--user=bob:pa55word"], &["curl", "--user=bob:<redacted>"]),
    (&["curl", "--proxy-user", "p:pw0rd", "h"], &["curl", "--proxy-user", "p:<redacted>", "h"]),
    (&["mysql", "-uroot", "-ps3cretpw", "db"], &["mysql", "-uroot", "-p<redacted>", "db"]),
    (&["/usr/bin/mysqldump", "-pS3cret", "db"], &["/usr/bin/mysqldump", "-p<redacted>", "db"]),
    (&["sshpass", "-p", "hunter2", "ssh", "host"], &["sshpass", "-p", R, "ssh", "host"]),
    (&["redis-cli", "-a", "s3cret", "ping"], &["redis-cli", "-a", R, "ping"]),
    (&["redis-cli", "-as3cret", "ping"], &["redis-cli", "-a<redacted>", "ping"]),
    // Headers.
    (&["curl", "-H", "Authorization: Bearer abcdef123456", "https://api.x/v1"], &["curl", "-H", "Authorization: <redacted>", "https://api.x/v1"]),
    (&["curl", "-H", "X-Api-Key: k123456789", "u"], &["curl", "-H", "X-Api-Key: <redacted>", "u"]),
    (&["curl", "-H", "X-Custom: 9f8e7d6c5b4a39281706aBcD", "u"], &["curl", "-H", "X-Custom: <redacted>", "u"]),
    (&["curl", "-H", "X-Forward: Bearer abcdefgh", "u"], &["curl", "-H", "X-Forward: <redacted>", "u"]),
    (&["x", "-H", "Cookie: sid=abc123"], &["x", "-H", "Cookie: <redacted>"]),
    (&["curl", "--header", "authorization:Bearer abcdef123456"], &["curl", "--header", "authorization:<redacted>"]),
    (&["x", "Bearer abcdef123456"], &["x", "Bearer <redacted>"]),
    (&["x", "Proxy-Authorization: Basic dXNlcjpwYXNz"], &["x", "Proxy-Authorization: <redacted>"]),
    // Shell strings.
    (
        &["sh", "-c", "curl -H 'Authorization: Bearer tok3n123456' https://x/y"],
        &["sh", "-c", "curl -H 'Authorization: <redacted>' https://x/y"],
    ),
    (
        &["bash", "-c", "export OPENAI_API_KEY=abc123xyz && python app.py"],
        &["bash", "-c", "export OPENAI_API_KEY=<redacted> && python app.py"],
    ),
    (
        &["sh", "-c", "python serve.py --api-key s3cr3t --port 8000"],
        &["sh", "-c", "python serve.py --api-key <redacted> --port 8000"],
    ),
    (&["sh", "-c", "mysql -uroot -pS3cret db"], &["sh", "-c", "mysql -uroot -p<redacted> db"]),
    (
        &["sh", "-c", "bash -c \"curl -u user:pw123 https://h\""],
        &["sh", "-c", "bash -c \"curl -u user:<redacted> https://h\""],
    ),
    (
        &["sh", "-c", "cd /app; TOKEN='a b c' ./run --secret=\"x y\""],
        &["sh", "-c", "cd /app; TOKEN=<redacted> ./run --secret=<redacted>"],
    ),
    (
        &["sh", "-c", "curl -d \"{\\\"token\\\": \\\"abc\\\"}\" https://h"],
        &["sh", "-c", "curl -d \"{\\\"token\\\": <redacted>\" https://h"],
    ),
    (&["sh", "-c", "echo hi | sshpass -p pw ssh h"], &["sh", "-c", "echo hi | sshpass -p <redacted> ssh h"]),
    (
        &["python3", "-c", "import os; os.environ['HF_TOKEN'] = 'hf0value'; serve()"],
        &["python3", "-c", "import os; os.environ['HF_TOKEN'] = '<redacted>'; serve()"],
    ),
    // A leading assignment in a shell script hides its value, not the command it runs.
    (
        &["sh", "-c", "OPENAI_API_KEY=abc123 python serve.py --port 8000"],
        &["sh", "-c", "OPENAI_API_KEY=<redacted> python serve.py --port 8000"],
    ),
    (
        &["/bin/bash", "-lc", "HF_TOKEN='a b' vllm serve /m --port 8000"],
        &["/bin/bash", "-lc", "HF_TOKEN=<redacted> vllm serve /m --port 8000"],
    ),
    (&["sh", "-c", "API_KEY=k3y"], &["sh", "-c", "API_KEY=<redacted>"]),
    // Outside a shell's script, an assignment's value is the whole argument, blanks included.
    (&["env", "DB_PASSWORD=correct horse battery", "app"], &["env", "DB_PASSWORD=<redacted>", "app"]),
    // URLs.
    (&["x", "https://user:p%40ss@db.example.com/x"], &["x", "https://<redacted>@db.example.com/x"]),
    (&["x", "--db", "postgres://app:s3cr3t@db:5432/app"], &["x", "--db", "postgres://<redacted>@db:5432/app"]),
    (&["x", "https://u:pa/ss@host/x"], &["x", "https://<redacted>@host/x"]),
    (&["x", "https://u:p@ss@host/x"], &["x", "https://<redacted>@host/x"]),
    (&["x", "https://u:p?ss#x@host/x"], &["x", "https://<redacted>@host/x"]),
    (
        &["x", "git+https://ghp_abcdefghijklmnopqrstuvwxyz0123456789@github.com/o/r.git"],
        &["x", "git+https://<redacted>@github.com/o/r.git"],
    ),
    (&["x", "ssh://git@github.com/o/r"], &["x", "ssh://<redacted>@github.com/o/r"]),
    (&["x", "--proxy", "http://user:pw@proxy:3128"], &["x", "--proxy", "http://<redacted>@proxy:3128"]),
    (&["x", "--dsn", "postgresql://u:p@h/db"], &["x", "--dsn", "postgresql://<redacted>@h/db"]),
    (
        &["x", "mongodb+srv://admin:pw@cluster0.mongodb.net/?retryWrites=true"],
        &["x", "mongodb+srv://<redacted>@cluster0.mongodb.net/?retryWrites=true"],
    ),
    (&["x", "redis://:s3cret@localhost:6379/0"], &["x", "redis://<redacted>@localhost:6379/0"]),
    (
        &["git", "clone", "https://oauth2:glpat-abcdef1234567890abcd@gitlab.com/g/p.git"],
        &["git", "clone", "https://<redacted>@gitlab.com/g/p.git"],
    ),
    (
        &["pip", "install", "--index-url", "https://__token__:pypi-AgEIcHlwaS5vcmcCJGFi@upload.pypi.org/simple"],
        &["pip", "install", "--index-url", "https://<redacted>@upload.pypi.org/simple"],
    ),
    (
        &["x", "--webhook", "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX"],
        &["x", "--webhook", "https://hooks.slack.com/services/<redacted>"],
    ),
    (
        &["x", "https://discord.com/api/webhooks/123456789/AbCdEf-token_value"],
        &["x", "https://discord.com/api/webhooks/<redacted>"],
    ),
    (
        &["x", "https://api.telegram.org/bot123456:ABC-DEF1234ghIkl/sendMessage"],
        &["x", "https://api.telegram.org/<redacted>"],
    ),
    (
        &["x", "https://example.webhook.office.com/webhookb2/abc@def/IncomingWebhook/xyz/123"],
        &["x", "https://example.webhook.office.com/webhookb2/<redacted>"],
    ),
    (
        &["x", "https://outlook.office.com/webhook/abc-123/IncomingWebhook/def"],
        &["x", "https://outlook.office.com/webhook/<redacted>"],
    ),
    (
        &["x", "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAXX%2F2024&X-Amz-Signature=abcdef0123&X-Amz-Expires=3600"],
        &["x", "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=<redacted>&X-Amz-Signature=<redacted>&X-Amz-Expires=3600"],
    ),
    (
        &["x", "https://b.s3.amazonaws.com/k?X-Amz-Security-Token=IQoJb3JpZ2luX2Vj&X-Amz-Date=20240101T000000Z"],
        &["x", "https://b.s3.amazonaws.com/k?X-Amz-Security-Token=<redacted>&X-Amz-Date=20240101T000000Z"],
    ),
    (
        &["x", "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&ss=b&srt=o&sp=r&se=2026-01-01&sig=AbC%2Bdef123%3D"],
        &["x", "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&ss=b&srt=o&sp=r&se=2026-01-01&sig=<redacted>"],
    ),
    (
        &["x", "https://h/cb#access_token=ya29abc&token_type=Bearer"],
        &["x", "https://h/cb#access_token=<redacted>&token_type=Bearer"],
    ),
    (&["x", "https://h/oauth/callback?code=4/0AbCdEf&state=xyz"], &["x", "https://h/oauth/callback?code=<redacted>&state=xyz"]),
    (&["x", "https://h/?apikey=12345"], &["x", "https://h/?apikey=<redacted>"]),
    (&["x", "https://h/a?next=https://u:p@o/b"], &["x", "https://h/a?next=https://<redacted>@o/b"]),
    // Connection strings, ODBC, JDBC.
    (
        &["x", "Server=db;Database=app;User Id=sa;Password=P@ss;"],
        &["x", "Server=db;Database=app;User Id=sa;Password=<redacted>;"],
    ),
    (
        &["x", "Driver={ODBC Driver 18};Server=h;Uid=u;Pwd={p;w};"],
        &["x", "Driver={ODBC Driver 18};Server=h;Uid=u;Pwd=<redacted>;"],
    ),
    (
        &["x", "jdbc:postgresql://h:5432/db?user=app&password=s3cret&ssl=true"],
        &["x", "jdbc:postgresql://h:5432/db?user=app&password=<redacted>&ssl=true"],
    ),
    (
        &["x", "jdbc:sqlserver://h:1433;databaseName=d;user=u;password=p4ss"],
        &["x", "jdbc:sqlserver://h:1433;databaseName=d;user=u;password=<redacted>"],
    ),
    (
        &["x", "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=abc123==;EndpointSuffix=core.windows.net"],
        &["x", "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=<redacted>;EndpointSuffix=core.windows.net"],
    ),
    (&["curl", "-HCookie: sid=abc123", "u"], &["curl", "-HCookie: <redacted>", "u"]),
    (&["curl", "-HX-Api-Key: k1234567", "u"], &["curl", "-HX-Api-Key: <redacted>", "u"]),
    (&["docker", "login", "-u", "bob", "-p", "s3cret", "r.io"], &["docker", "login", "-u", "bob", "-p", R, "r.io"]),
    (&["docker", "run", "-p", "8080:80", "img"], &["docker", "run", "-p", "8080:80", "img"]),
    (&["docker", "login", "--password-stdin", "r.io"], &["docker", "login", "--password-stdin", "r.io"]),
    (&["helm", "registry", "login", "r.io", "--password", "pw"], &["helm", "registry", "login", "r.io", "--password", R]),
    (
        &["x", "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----"],
        &["x", "-----BEGIN RSA PRIVATE KEY-----<redacted>"],
    ),
    (
        &["x", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"],
        &["x", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"],
    ),
    // Token shapes whatever carries them.
    (
        &["x", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"],
        &["x", R],
    ),
    (&["x", "AKIAIOSFODNN7EXAMPLE"], &["x", R]),
    (&["x", "ASIAIOSFODNN7EXAMPLE"], &["x", R]),
    (&["x", "AIzaSyA1234567890abcdefghijklmnopqrstu"], &["x", R]),
    (&["x", "ghp_1234567890abcdefghijklmnopqrstuvwxyz"], &["x", R]),
    (&["x", "gho_1234567890abcdefghijklmnopqrstuvwxyz"], &["x", R]),
    (&["x", "github_pat_11ABCDEFG0123456789_abcdefghijklmnop"], &["x", R]),
    (&["x", "glpat-abcdefghij1234567890"], &["x", R]),
    (&["x", "xoxb-123456789012-abcdefghijkl"], &["x", R]),
    (&["x", "xapp-1-A0123-456789-abcdef"], &["x", R]),
    (&["x", "npm_abcdefghijklmnopqrstuvwxyz0123456789"], &["x", R]),
    (&["x", "pypi-AgEIcHlwaS5vcmcCJGFiY2RlZjEyMzQ1"], &["x", R]),
    (&["x", "sk_live_abcdefghij0123456789"], &["x", R]),
    (&["x", "rk_live_abcdefghij0123456789"], &["x", R]),
    (&["x", "ya29.a0AfH6SMBx1234567890abcdef"], &["x", R]),
    (&["x", "sk-ant-api03-abcdefghijklmnop0123456789"], &["x", R]),
    (&["x", "sk-proj-abcdefghij0123456789XYZ"], &["x", R]),
    (&["x", "--foo", "sk-abcdefghijklmnopqrstuvwxyz012345"], &["x", "--foo", R]),
    (&["x", "hf_abcdefghijklmnop1234567890"], &["x", R]),
    (&["x", "gsk_abcdefghijklmnop1234567890"], &["x", R]),
    (&["run", "echo sk-test-abcdefghijkl0123 ok"], &["run", "echo <redacted> ok"]),
];

/// Environment values: name, value → expected value.
const ENV: &[(&str, &str, &str)] = &[
    ("GH_PAT", "abcdef123456", R),
    ("AZURE_DEVOPS_PAT", "x7y8z9", R),
    ("DB_PW", "hunter2", R),
    ("PATH", "/usr/local/bin:/usr/bin", "/usr/local/bin:/usr/bin"),
    ("PATCH_LEVEL", "3", "3"),
    ("TOKENIZERS_PARALLELISM", "false", "false"),
    ("CUDA_VISIBLE_DEVICES", "0,1", "0,1"),
    ("HF_HOME", "/data/hf", "/data/hf"),
    ("KEY_FILE", "/etc/x.pem", "/etc/x.pem"),
    ("NODE_OPTIONS", "--max-old-space-size=4096", "--max-old-space-size=4096"),
    ("MLFLOW_TRACKING_URI", "http://mlflow:5000", "http://mlflow:5000"),
    ("HF_ENDPOINT", "https://huggingface.co", "https://huggingface.co"),
    ("OLLAMA_HOST", "0.0.0.0:11434", "0.0.0.0:11434"),
    ("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True", "expandable_segments:True"),
    ("WEBUI_AUTH", "false", "false"),
    ("JUPYTER_TOKEN", "", ""),
    ("OPENAI_API_KEY", "${env:OPENAI}", "${env:OPENAI}"),
    ("PWD", "/home/u", "/home/u"),
    ("HF_HUB_OFFLINE", "1", "1"),
    ("MAX_TOKENS", "4096", "4096"),
    ("TRANSFORMERS_CACHE", "/root/.cache/hf", "/root/.cache/hf"),
    ("GIT_ASKPASS", "/usr/bin/askpass", "/usr/bin/askpass"),
    ("SSH_AUTH_SOCK", "/tmp/ssh-x/agent.1", "/tmp/ssh-x/agent.1"),
    ("NO_PROXY", "localhost,127.0.0.1", "localhost,127.0.0.1"),
    ("COMMANDLINE_ARGS", "--listen --port 7860 --xformers", "--listen --port 7860 --xformers"),
    ("OPENAI_API_KEY", "abc", R),
    ("HF_TOKEN", "hf_abcdefghijklmnopqrstuvwxyz0123", R),
    ("DB_PASSWORDS", "a,b", R),
    ("APP_SECRETS", "x", R),
    ("SLACK_AUTHTOKEN", "x", R),
    ("accesstoken", "x", R),
    ("GPG_PASSPHRASE", "x", R),
    ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=abc", R),
    ("SESSION_ID", "abc123", R),
    ("VLLM_API_KEY", "token-abc123", R),
    ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", R),
    ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE", R),
    ("SOME_VAR", "ghp_1234567890abcdefghijklmnopqrstuvwxyz", R),
    ("COMMANDLINE_ARGS", "--listen --api-auth admin:pw --port 7860", "--listen --api-auth <redacted> --port 7860"),
    (
        "JAVA_OPTS",
        "-Xmx2g -Djavax.net.ssl.keyStorePassword=changeit",
        "-Xmx2g -Djavax.net.ssl.keyStorePassword=<redacted>",
    ),
    ("VLLM_EXTRA_ARGS", "--api-key s3cret --port 8000", "--api-key <redacted> --port 8000"),
    ("OPENAI_BASE_URL", "https://user:pw@proxy.local/v1", "https://<redacted>@proxy.local/v1"),
    ("MY_CONFIG", "{\"token\": \"abc\"}", "{\"token\": \"<redacted>\"}"),
    ("DATABASE_URL", "postgres://u:p@h:5432/d", "postgres://<redacted>@h:5432/d"),
    (
        "SLACK_WEBHOOK_URL",
        "https://hooks.slack.com/services/T0/B0/abcdef",
        "https://hooks.slack.com/services/<redacted>",
    ),
    (
        "AZURE_STORAGE_CONNECTION_STRING",
        "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=xyz==;EndpointSuffix=core.windows.net",
        "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=<redacted>;EndpointSuffix=core.windows.net",
    ),
    ("PIP_INDEX_URL", "https://user:tok@pypi.corp/simple", "https://<redacted>@pypi.corp/simple"),
    ("TS_CONFIG", "inference_address=http://0.0.0.0:8080", "inference_address=http://0.0.0.0:8080"),
];

/// Free text: input → expected output.
const TEXT: &[(&str, &str)] = &[
    ("", ""),
    ("--port 8080 --model /srv/m.gguf", "--port 8080 --model /srv/m.gguf"),
    ("the tokenizer uses 512 tokens", "the tokenizer uses 512 tokens"),
    ("model: llama3", "model: llama3"),
    ("--opt=value", "--opt=value"),
    ("https://github.com/org/repo", "https://github.com/org/repo"),
    ("https://u:p@h/x?token=abc&x=1#frag", "https://<redacted>@h/x?token=<redacted>&x=1#frag"),
    ("see https://hooks.slack.com/services/T1/B2/c3 now", "see https://hooks.slack.com/services/<redacted> now"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: <redacted>"),
    ("auth:\n  token: abc123\n  user: bob", "auth:\n  token: <redacted>\n  user: bob"),
    ("password = hunter2", "password = <redacted>"),
    ("sv=2022-11-02&ss=b&sig=AbC123%3D&se=2026", "sv=2022-11-02&ss=b&sig=<redacted>&se=2026"),
    ("token=abc", "token=<redacted>"),
    ("key: value with spaces", "key: <redacted>"),
    ("curl -H \"X-Api-Key: abc123\" https://x", "curl -H \"X-Api-Key: <redacted>\" https://x"),
    (
        "git remote add o https://x-access-token:ghs_abcdefghijklmnop1234@github.com/o/r",
        "git remote add o https://<redacted>@github.com/o/r",
    ),
    ("ok AKIAIOSFODNN7EXAMPLE ok", "ok <redacted> ok"),
    ("naïve café https://u:p@h/ é", "naïve café https://<redacted>@h/ é"),
    ("https://discord.com/api/webhooks/12345/abcDEF_123", "https://discord.com/api/webhooks/<redacted>"),
    ("https://maker.ifttt.com/trigger/ev/with/key/abc123XYZ", "https://maker.ifttt.com/trigger/ev/with/key/<redacted>"),
    ("https://hooks.zapier.com/hooks/catch/123/abcde/", "https://hooks.zapier.com/hooks/catch/<redacted>"),
    ("https://mm.example.com/hooks/xu5mdkq8zjgf7bn3a4x1k9c2ho", "https://mm.example.com/hooks/<redacted>"),
    ("client_secret=abc&grant_type=client_credentials", "client_secret=<redacted>&grant_type=client_credentials"),
    ("{\"api_key\": \"abc\", \"port\": 8000}", "{\"api_key\": \"<redacted>\", \"port\": 8000}"),
    ("{'password': 'x y'}", "{'password': '<redacted>'}"),
    ("apiKey: sk-abcdefghijklmnopqrstuv0123", "apiKey: <redacted>"),
    ("Token: abc", "Token: <redacted>"),
    ("x=1 y=2 port=80", "x=1 y=2 port=80"),
    ("app:s3cret@tcp(db:3306)/app?parseTime=true", "app:<redacted>@tcp(db:3306)/app?parseTime=true"),
    ("--dsn postgres:pw1@db:5432/x", "--dsn postgres:<redacted>@db:5432/x"),
    ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
    ("python:3.11@sha256:0123456789abcdef", "python:3.11@sha256:0123456789abcdef"),
    ("mail me at a.b@example.com", "mail me at a.b@example.com"),
    ("pip install pkg@file:///srv/pkg.whl", "pip install pkg@file:///srv/pkg.whl"),
    ("amqp://guest:guest@rabbit:5672//", "amqp://<redacted>@rabbit:5672//"),
    ("postgresql://user:pa:ss@h/db", "postgresql://<redacted>@h/db"),
    (
        "s3://b/k?AWSAccessKeyId=AKIAX&Signature=abc&Expires=1",
        "s3://b/k?AWSAccessKeyId=<redacted>&Signature=<redacted>&Expires=1",
    ),
    ("helm install --set secrets.apiKey=abc x", "helm install --set secrets.apiKey=<redacted> x"),
    ("--set auth.password=abc --set image.tag=1.2", "--set auth.password=<redacted> --set image.tag=1.2"),
    ("x-api-key:abc123", "x-api-key:<redacted>"),
    ("\"client_secret\":\"GOCSPX-abc\"", "\"client_secret\":\"<redacted>\""),
    ("ANTHROPIC_API_KEY=sk-ant-x torchrun train.py", "ANTHROPIC_API_KEY=<redacted> torchrun train.py"),
    ("webhook_url=https://hooks.slack.com/services/a/b/c", "webhook_url=https://hooks.slack.com/services/<redacted>"),
    (
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ),
    ("img@sha256:0123456789abcdef0123456789abcdef01234567", "img@sha256:0123456789abcdef0123456789abcdef01234567"),
    ("--lora-modules a=/path/a b=/path/b", "--lora-modules a=/path/a b=/path/b"),
    ("ssh -i ~/.ssh/id_rsa user@host", "ssh -i ~/.ssh/id_rsa user@host"),
    ("scp user@host:/path .", "scp user@host:/path ."),
    ("--log-level=debug --key-size 2048", "--log-level=debug --key-size 2048"),
    ("private_key_id: 1234", "private_key_id: 1234"),
    ("-e OPENAI_API_KEY --env-file .env", "-e OPENAI_API_KEY --env-file .env"),
    ("--served-model-name my-key-model", "--served-model-name my-key-model"),
];

#[test]
fn the_battery_gives_exactly_the_expected_output() {
    let mut failures = Vec::new();
    for (input, expected) in ARGV {
        let args: Vec<String> = input.iter().map(|s| (*s).to_string()).collect();
        let got = cmdline(&args);
        if got != *expected {
            failures.push(format!("cmdline {input:?}\n   got {got:?}\n  want {expected:?}"));
        }
    }
    for (name, input, expected) in ENV {
        let got = value(name, input);
        if got != *expected {
            failures.push(format!("value {name}={input:?}\n   got {got:?}\n  want {expected:?}"));
        }
    }
    for (input, expected) in TEXT {
        let got = text(input);
        if got != *expected {
            failures.push(format!("text {input:?}\n   got {got:?}\n  want {expected:?}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases fail:\n{}", failures.len(), case_count(), failures.join("\n"));
}

fn case_count() -> usize {
    ARGV.len() + ENV.len() + TEXT.len()
}

#[test]
fn the_battery_has_at_least_150_cases_secret_and_harmless() {
    let harmless = ARGV.iter().filter(|(i, e)| i == e).count()
        + ENV.iter().filter(|(_, i, e)| i == e).count()
        + TEXT.iter().filter(|(i, e)| i == e).count();
    eprintln!("battery: {} cases, {harmless} harmless, {} secret", case_count(), case_count() - harmless);
    assert!(case_count() >= 150, "{} cases", case_count());
    assert!(harmless >= 50 && case_count() - harmless >= 100, "{harmless} harmless of {}", case_count());
}

#[test]
fn secret_names() {
    for n in [
        "OPENAI_API_KEY",
        "--api-key",
        "HF_TOKEN",
        "hfToken",
        "DB_PASSWORD",
        "aws_secret_access_key",
        "token",
        "DB_PASSWORDS",
        "API_KEYS",
        "APP_SECRETS",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "authtoken",
        "accesstoken",
        "passphrase",
        "clientSecret",
        "SESSION_ID",
    ] {
        assert!(is_secret_name(n), "{n}");
    }
    for n in [
        "KEY_FILE",
        "--api-key-file",
        "TOKENIZERS_PARALLELISM",
        "MAX_TOKENS_LIMIT",
        "--max-tokens",
        "max_new_tokens",
        "--port",
        "HOME",
        "keyboard",
        "AWS_ACCESS_KEY_ID",
        "--api-key-header",
    ] {
        assert!(!is_secret_name(n), "{n}");
    }
}

#[test]
fn assignments_are_named() {
    assert_eq!(assigned_name("export OPENAI_API_KEY=sk-x"), Some("OPENAI_API_KEY"));
    assert_eq!(assigned_name("  ANTHROPIC_API_KEY=\"x\""), Some("ANTHROPIC_API_KEY"));
    assert_eq!(assigned_name("set -gx GROQ_API_KEY abc"), Some("GROQ_API_KEY"));
    assert_eq!(assigned_name("declare -x HF_TOKEN=abc"), Some("HF_TOKEN"));
    assert_eq!(assigned_name("typeset -x MISTRAL_API_KEY=abc"), Some("MISTRAL_API_KEY"));
    assert_eq!(assigned_name("setenv COHERE_API_KEY abc"), Some("COHERE_API_KEY"));
    assert_eq!(assigned_name("# OPENAI_API_KEY=x"), None);
    assert_eq!(assigned_name("echo hi"), None);
}

#[test]
fn huge_inputs_are_bounded_and_hidden_whole() {
    let huge = "a".repeat(MAX_TEXT + 1);
    assert_eq!(text(&huge), MARKER);
    assert_eq!(cmdline(&["x".to_string(), huge]), ["x", MARKER]);
    // Many URLs in one text: the rest past the bound is hidden.
    let urls = "a://b ".repeat(1000);
    let out = text(&urls);
    assert!(out.ends_with(MARKER) && out.len() < urls.len(), "{}", out.len());
    // Pathological repetitions stay fast (one pass each).
    let start = std::time::Instant::now();
    let docker = format!("docker login {}", "-p x ".repeat(40_000));
    for s in [
        "password=".repeat(20_000),
        "a:".repeat(50_000),
        "\"".repeat(100_000),
        "://@".repeat(30_000),
        "-a".repeat(100_000),
        "sk-".repeat(60_000),
        "X-A: ".repeat(40_000),
        "sh -c '".repeat(30_000),
        docker,
    ] {
        let _ = text(&s);
        let _ = cmdline(&[s.clone(), s]);
    }
    assert!(start.elapsed() < std::time::Duration::from_secs(20), "{:?}", start.elapsed());
}

/// Templates: each puts the secret `s` in one supported shape, as a command line.
fn argv_shapes(s: &str) -> Vec<Vec<String>> {
    let shapes: Vec<Vec<String>> = vec![
        vec!["srv".into(), "--api-key".into(), s.into()],
        vec!["srv".into(), format!("--api-key={s}")],
        vec!["srv".into(), "-token".into(), s.into()],
        vec!["java".into(), format!("-Dpassword={s}")],
        vec!["java".into(), format!("-Dapp.db.password={s}")],
        vec!["curl".into(), "-u".into(), format!("user:{s}"), "https://h".into()],
        vec!["curl".into(), format!("-uuser:{s}")],
        vec!["curl".into(), format!("--user=user:{s}")],
        vec!["curl".into(), "-H".into(), format!("Authorization: Bearer {s}")],
        vec!["curl".into(), "-H".into(), format!("Authorization: Basic {s}==")],
        vec!["curl".into(), "-H".into(), format!("X-Api-Key: {s}")],
        vec!["sh".into(), "-c".into(), format!("curl -H 'Authorization: Bearer {s}' https://h")],
        vec!["bash".into(), "-c".into(), format!("export OPENAI_API_KEY={s}; python x.py")],
        vec!["sh".into(), "-c".into(), format!("python s.py --token {s} --port 1")],
        vec!["sh".into(), "-c".into(), format!("sh -c \"mysql -p{s} db\"")],
        vec!["x".into(), format!("https://user:{s}@h/x")],
        vec!["x".into(), format!("https://{s}@github.com/o/r")],
        vec!["x".into(), format!("https://h/x?sig={s}&a=1")],
        vec!["x".into(), format!("https://h/x?token={s}")],
        vec!["x".into(), format!("https://h/cb#access_token={s}")],
        vec!["x".into(), format!("https://h/x?X-Amz-Signature={s}")],
        vec!["x".into(), format!("https://hooks.slack.com/services/T0/B0/{s}")],
        vec!["x".into(), format!("https://discord.com/api/webhooks/1/{s}")],
        vec!["x".into(), format!("https://api.telegram.org/bot{s}/sendMessage")],
        vec!["x".into(), format!("Server=h;Uid=u;Pwd={s};")],
        vec!["x".into(), format!("Server=h;Password={s}")],
        vec!["x".into(), format!("jdbc:postgresql://h/db?user=x&password={s}")],
        vec!["mysql".into(), format!("-p{s}")],
        vec!["sshpass".into(), "-p".into(), s.into(), "ssh".into()],
        vec!["x".into(), format!("sk-proj-{s}")],
        vec!["x".into(), format!("sk-ant-api03-{s}")],
        vec!["x".into(), format!("ghp_{s}")],
        vec!["x".into(), format!("hf_{s}")],
        vec!["x".into(), format!("glpat-{s}")],
        vec!["x".into(), format!("xoxb-{s}")],
        vec!["x".into(), format!("npm_{s}")],
        vec!["x".into(), format!("see sk_live_{s} here")],
        vec!["x".into(), format!("AKIA{}", s.to_ascii_uppercase())],
        vec!["x".into(), format!("eyJhbGciOiJIUzI1NiJ9.eyJ{s}.{s}")],
        vec!["x".into(), format!("--config={{\"api_key\": \"{s}\"}}")],
        vec!["x".into(), format!("token: {s}")],
        vec!["x".into(), format!("DSN=app:{s}@tcp(db:3306)/app")],
        vec!["sh".into(), "-c".into(), format!("curl -d \"{{\\\"api_key\\\": \\\"{s}\\\"}}\" https://h")],
        vec!["sh".into(), "-c".into(), format!("docker login -u me -p {s} registry.example")],
        vec!["curl".into(), format!("-HCookie: session={s}")],
        vec!["x".into(), format!("-----BEGIN PRIVATE KEY-----\n{s}\n-----END PRIVATE KEY-----")],
        vec!["env".into(), format!("DB_PASSWORDS={s}"), "run".into()],
    ];
    shapes
}

/// Templates for environment values: name and value.
fn env_shapes(s: &str) -> Vec<(String, String)> {
    vec![
        ("DB_PASSWORDS".into(), s.into()),
        ("SLACK_AUTHTOKEN".into(), s.into()),
        ("OTEL_EXPORTER_OTLP_HEADERS".into(), format!("x-team={s}")),
        ("COMMANDLINE_ARGS".into(), format!("--listen --api-auth u:{s}")),
        ("JAVA_OPTS".into(), format!("-Xmx1g -Dtrust.password={s}")),
        ("NODE_OPTIONS".into(), format!("--require x --api-key={s}")),
        ("MY_CONFIG".into(), format!("{{\"token\": \"{s}\"}}")),
        ("DATABASE_URL".into(), format!("postgres://app:{s}@db/app")),
        ("ANY".into(), format!("ghp_{s}")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_secret_in_any_supported_shape_never_reaches_the_output(raw in "[A-Za-z0-9]{15,40}") {
        // Random, with a digit as every real credential body of this length has.
        let s = format!("{raw}7");
        for args in argv_shapes(&s) {
            let out = cmdline(&args).join(" ");
            prop_assert!(!out.contains(&s), "{:?} → {}", args, out);
        }
        for (name, v) in env_shapes(&s) {
            let out = value(&name, &v);
            prop_assert!(!out.contains(&s), "{}={} → {}", name, v, out);
        }
    }

    #[test]
    fn url_passwords_with_slashes_ats_and_escapes_never_reach_the_output(
        raw in "[A-Za-z0-9/@%._~!$*+,;=-]{6,30}",
    ) {
        let s = format!("{raw}Q9");
        for url in [format!("https://user:{s}@host.example/x"), format!("postgres://u:{s}@db:5432/app?ssl=1")] {
            let out = text(&url);
            prop_assert!(!out.contains(&s), "{} → {}", url, out);
            // The host stays readable, unless the password itself looks like a pair
            // (`OTP=…`), whose value then runs over the host: more hidden, nothing leaked.
            if !s.contains('=') {
                prop_assert!(out.contains("host.example") || out.contains("db:5432"), "{} → {}", url, out);
            }
        }
    }

    #[test]
    fn harmless_command_lines_round_trip(
        parts in proptest::collection::vec(
            (
                prop_oneof![
                    Just("--port"), Just("--host"), Just("--model"), Just("--max-tokens"), Just("-n"),
                    Just("--tensor-parallel-size"), Just("--dtype"), Just("--served-model-name"), Just("--ctx-size"),
                ],
                prop_oneof![
                    "[0-9]{1,5}",
                    "/srv/[a-z]{1,8}/[a-z]{1,8}\\.gguf",
                    "[a-z]{1,10}",
                    Just("0.0.0.0".to_string()),
                    "https://huggingface\\.co/[a-z]{1,8}/[a-z]{1,8}",
                ],
            ),
            0..8,
        ),
    ) {
        let mut args = vec!["python3".to_string(), "-m".to_string(), "vllm.entrypoints.openai.api_server".to_string()];
        for (flag, v) in parts {
            args.push(flag.to_string());
            args.push(v);
        }
        prop_assert_eq!(cmdline(&args), args);
    }

    #[test]
    fn nothing_panics_on_any_input(s in "\\PC{0,200}", t in "[ -~]{0,200}") {
        let _ = text(&s);
        let _ = text(&t);
        let _ = value("COMMANDLINE_ARGS", &s);
        let _ = cmdline(&[s.clone(), t.clone(), s, t]);
    }
}
