#!/usr/bin/env python3
"""A long-running librdkafka producer that streams stdin, one message a line.

kcat 1.7.1 -P cannot stream: it reads stdin to EOF before producing the
first message (checked with -u, -T, -l /dev/stdin and linger.ms=0). This is
the same librdkafka (librdkafka.so.1, 2.0.2 on Debian 12) driven through
ctypes, without headers or a compiler.

Usage: rdkafka_stdin_producer.py TOPIC[:PARTITION] key=value ... (librdkafka
properties); with a partition every message goes to it (one broker, one
connection), otherwise librdkafka's partitioner chooses.

stdout, one line per event, flushed at once:
  sent <line>        rd_kafka_produce accepted the message
  delivered <line>   the broker acknowledged it
  failed <line> <error>
"""
import ctypes
import sys
import threading

RD_KAFKA_PRODUCER = 0
RD_KAFKA_PARTITION_UA = -1
RD_KAFKA_MSG_F_COPY = 2


class Message(ctypes.Structure):
    _fields_ = [
        ("err", ctypes.c_int),
        ("rkt", ctypes.c_void_p),
        ("partition", ctypes.c_int32),
        ("payload", ctypes.c_void_p),
        ("len", ctypes.c_size_t),
        ("key", ctypes.c_void_p),
        ("key_len", ctypes.c_size_t),
        ("offset", ctypes.c_int64),
        ("_private", ctypes.c_void_p),
    ]


lib = ctypes.CDLL("librdkafka.so.1")
lib.rd_kafka_conf_new.restype = ctypes.c_void_p
lib.rd_kafka_conf_set.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
DR = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(Message), ctypes.c_void_p)
lib.rd_kafka_conf_set_dr_msg_cb.argtypes = [ctypes.c_void_p, DR]
lib.rd_kafka_new.restype = ctypes.c_void_p
lib.rd_kafka_new.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
lib.rd_kafka_topic_new.restype = ctypes.c_void_p
lib.rd_kafka_topic_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
lib.rd_kafka_produce.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t,
                                 ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
lib.rd_kafka_poll.argtypes = [ctypes.c_void_p, ctypes.c_int]
lib.rd_kafka_flush.argtypes = [ctypes.c_void_p, ctypes.c_int]
lib.rd_kafka_err2str.restype = ctypes.c_char_p
lib.rd_kafka_last_error.restype = ctypes.c_int


def say(*words):
    sys.stdout.write(" ".join(words) + "\n")
    sys.stdout.flush()


@DR
def on_delivery(_rk, msg, _opaque):
    m = msg.contents
    text = ctypes.string_at(m.payload, m.len).decode()
    if m.err:
        say("failed", text, lib.rd_kafka_err2str(m.err).decode().replace(" ", "_"))
    else:
        say("delivered", text)


def main():
    topic, _, part = sys.argv[1].partition(":")
    partition = int(part) if part else RD_KAFKA_PARTITION_UA
    props = sys.argv[2:]
    err = ctypes.create_string_buffer(512)
    conf = lib.rd_kafka_conf_new()
    for kv in props:
        k, v = kv.split("=", 1)
        if lib.rd_kafka_conf_set(conf, k.encode(), v.encode(), err, 512) != 0:
            sys.exit("config %s: %s" % (k, err.value.decode()))
    lib.rd_kafka_conf_set_dr_msg_cb(conf, on_delivery)
    rk = lib.rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, 512)
    if not rk:
        sys.exit("rd_kafka_new: " + err.value.decode())
    rkt = lib.rd_kafka_topic_new(rk, topic.encode(), None)
    done = threading.Event()

    def poller():  # delivery reports as they come, not only on input
        while not done.is_set():
            lib.rd_kafka_poll(rk, 100)

    t = threading.Thread(target=poller, daemon=True)
    t.start()
    for line in iter(sys.stdin.readline, ""):
        payload = line.rstrip("\n").encode()
        while lib.rd_kafka_produce(rkt, partition, RD_KAFKA_MSG_F_COPY, payload, len(payload), None, 0, None) != 0:
            say("queue_full", payload.decode(), lib.rd_kafka_err2str(lib.rd_kafka_last_error()).decode().replace(" ", "_"))
            lib.rd_kafka_poll(rk, 100)
        say("sent", payload.decode())
    done.set()
    t.join()
    left = lib.rd_kafka_flush(rk, 30000)
    if left != 0:
        sys.exit("flush: %d message(s) undelivered" % left)


if __name__ == "__main__":
    main()
