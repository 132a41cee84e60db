//! The pickle opcodes, named and valued as in CPython's `pickle.py` (documented in
//! `pickletools.py`), in the same order. Each doc gives the protocol that introduced the opcode
//! and its argument.

/// Push a mark (the start of a stack slice); protocol 0.
pub const MARK: u8 = b'(';
/// End of the pickle: the top of the stack is the result; protocol 0.
pub const STOP: u8 = b'.';
/// Discard the top of the stack (or the topmost mark); protocol 0.
pub const POP: u8 = b'0';
/// Discard everything down to and including the topmost mark; protocol 1.
pub const POP_MARK: u8 = b'1';
/// Push the top of the stack again; protocol 0.
pub const DUP: u8 = b'2';
/// Push a float: a decimal literal, newline-terminated; protocol 0.
pub const FLOAT: u8 = b'F';
/// Push an int or a bool (`00`, `01`): a decimal literal, newline-terminated; protocol 0.
pub const INT: u8 = b'I';
/// Push an int: 4 bytes, signed little-endian; protocol 1.
pub const BININT: u8 = b'J';
/// Push an int: 1 unsigned byte; protocol 1.
pub const BININT1: u8 = b'K';
/// Push a long: a decimal literal with an optional `L`, newline-terminated; protocol 0.
pub const LONG: u8 = b'L';
/// Push an int: 2 bytes, unsigned little-endian; protocol 1.
pub const BININT2: u8 = b'M';
/// Push `None`; protocol 0.
pub const NONE: u8 = b'N';
/// Push the object of a persistent id given as a newline-terminated string; protocol 0.
pub const PERSID: u8 = b'P';
/// Push the object of the persistent id on top of the stack; protocol 1.
pub const BINPERSID: u8 = b'Q';
/// Call the callable below the top with the argument tuple on top; protocol 0.
pub const REDUCE: u8 = b'R';
/// Push a str: a quoted literal, newline-terminated; protocol 0.
pub const STRING: u8 = b'S';
/// Push a str: a 4-byte signed length, then the bytes; protocol 1.
pub const BINSTRING: u8 = b'T';
/// Push a str: a 1-byte length, then the bytes; protocol 1.
pub const SHORT_BINSTRING: u8 = b'U';
/// Push a str: raw-unicode-escaped text, newline-terminated; protocol 0.
pub const UNICODE: u8 = b'V';
/// Push a str: a 4-byte length, then UTF-8; protocol 1.
pub const BINUNICODE: u8 = b'X';
/// Append the top of the stack to the list below it; protocol 0.
pub const APPEND: u8 = b'a';
/// Set the state on top on the object below it (`__setstate__` or a dict update); protocol 0.
pub const BUILD: u8 = b'b';
/// Push a global: module and name, each newline-terminated; protocol 0.
pub const GLOBAL: u8 = b'c';
/// Build a dict from the key and value pairs above the topmost mark; protocol 0.
pub const DICT: u8 = b'd';
/// Push an empty dict; protocol 1.
pub const EMPTY_DICT: u8 = b'}';
/// Extend the list below the topmost mark with the items above it; protocol 1.
pub const APPENDS: u8 = b'e';
/// Push a memo entry: a decimal key, newline-terminated; protocol 0.
pub const GET: u8 = b'g';
/// Push a memo entry: a 1-byte key; protocol 1.
pub const BINGET: u8 = b'h';
/// Call a class (module and name, newline-terminated) with the items above the topmost
/// mark; protocol 0.
pub const INST: u8 = b'i';
/// Push a memo entry: a 4-byte key; protocol 1.
pub const LONG_BINGET: u8 = b'j';
/// Build a list from the items above the topmost mark; protocol 0.
pub const LIST: u8 = b'l';
/// Push an empty list; protocol 1.
pub const EMPTY_LIST: u8 = b']';
/// Call the class right above the topmost mark with the items above it; protocol 1.
pub const OBJ: u8 = b'o';
/// Store the top of the stack in the memo: a decimal key, newline-terminated; protocol 0.
pub const PUT: u8 = b'p';
/// Store the top of the stack in the memo: a 1-byte key; protocol 1.
pub const BINPUT: u8 = b'q';
/// Store the top of the stack in the memo: a 4-byte key; protocol 1.
pub const LONG_BINPUT: u8 = b'r';
/// Set a key (below the top) to a value (on top) in the dict below them; protocol 0.
pub const SETITEM: u8 = b's';
/// Build a tuple from the items above the topmost mark; protocol 0.
pub const TUPLE: u8 = b't';
/// Push an empty tuple; protocol 1.
pub const EMPTY_TUPLE: u8 = b')';
/// Set the key and value pairs above the topmost mark in the dict below it; protocol 1.
pub const SETITEMS: u8 = b'u';
/// Push a float: 8 bytes, big-endian IEEE 754; protocol 1.
pub const BINFLOAT: u8 = b'G';
/// The protocol version: 1 byte; protocol 2.
pub const PROTO: u8 = 0x80;
/// Call `cls.__new__(cls, *args)` with the class below the argument tuple; protocol 2.
pub const NEWOBJ: u8 = 0x81;
/// Push the global registered under an extension code: 1 byte; protocol 2.
pub const EXT1: u8 = 0x82;
/// Push the global registered under an extension code: 2 bytes; protocol 2.
pub const EXT2: u8 = 0x83;
/// Push the global registered under an extension code: 4 bytes; protocol 2.
pub const EXT4: u8 = 0x84;
/// Build a tuple from the top item; protocol 2.
pub const TUPLE1: u8 = 0x85;
/// Build a tuple from the top two items; protocol 2.
pub const TUPLE2: u8 = 0x86;
/// Build a tuple from the top three items; protocol 2.
pub const TUPLE3: u8 = 0x87;
/// Push `True`; protocol 2.
pub const NEWTRUE: u8 = 0x88;
/// Push `False`; protocol 2.
pub const NEWFALSE: u8 = 0x89;
/// Push an int: a 1-byte length, then that many bytes, signed little-endian; protocol 2.
pub const LONG1: u8 = 0x8a;
/// Push an int: a 4-byte length, then that many bytes, signed little-endian; protocol 2.
pub const LONG4: u8 = 0x8b;
/// Push bytes: a 4-byte length, then the bytes; protocol 3.
pub const BINBYTES: u8 = b'B';
/// Push bytes: a 1-byte length, then the bytes; protocol 3.
pub const SHORT_BINBYTES: u8 = b'C';
/// Push a str: a 1-byte length, then UTF-8; protocol 4.
pub const SHORT_BINUNICODE: u8 = 0x8c;
/// Push a str: an 8-byte length, then UTF-8; protocol 4.
pub const BINUNICODE8: u8 = 0x8d;
/// Push bytes: an 8-byte length, then the bytes; protocol 4.
pub const BINBYTES8: u8 = 0x8e;
/// Push an empty set; protocol 4.
pub const EMPTY_SET: u8 = 0x8f;
/// Add the items above the topmost mark to the set below it; protocol 4.
pub const ADDITEMS: u8 = 0x90;
/// Build a frozenset from the items above the topmost mark; protocol 4.
pub const FROZENSET: u8 = 0x91;
/// Call `cls.__new__(cls, *args, **kwargs)` with the class below the arguments; protocol 4.
pub const NEWOBJ_EX: u8 = 0x92;
/// Push a global named by the module and name strings on top of the stack; protocol 4.
pub const STACK_GLOBAL: u8 = 0x93;
/// Store the top of the stack in the memo under the next free key; protocol 4.
pub const MEMOIZE: u8 = 0x94;
/// The start of a frame: its length, 8 bytes; protocol 4.
pub const FRAME: u8 = 0x95;
/// Push a bytearray: an 8-byte length, then the bytes; protocol 5.
pub const BYTEARRAY8: u8 = 0x96;
/// Push the next out-of-band buffer; protocol 5.
pub const NEXT_BUFFER: u8 = 0x97;
/// Make the buffer on top of the stack read-only; protocol 5.
pub const READONLY_BUFFER: u8 = 0x98;
