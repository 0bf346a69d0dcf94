#!/usr/bin/env python3
"""The Python side of the README demo: the same four workloads with multiprocessing.

Prints one line per workload: "<name> <value>" where the value is the metric the demo shows
(msgs/s, µs per round trip, ops/s, tasks/s). Run by build-demo/examples/demo; usable alone.
"""
import multiprocessing as mp
import sys
import time


def queue_consumer(q, n):
    for _ in range(n):
        q.get()


def queue_msgs_per_s(n=50_000):
    q = mp.Queue(1024)
    c = mp.Process(target=queue_consumer, args=(q, n))
    c.start()
    t = time.perf_counter()
    for i in range(n):
        q.put(i)
    c.join()
    return n / (time.perf_counter() - t)


def pipe_echo(conn, n):
    for _ in range(n):
        conn.send_bytes(conn.recv_bytes())


def pipe_round_trip_us(n=5_000):
    a, b = mp.Pipe()
    p = mp.Process(target=pipe_echo, args=(b, n))
    p.start()
    msg = b"12345678"
    t = time.perf_counter()
    for _ in range(n):
        a.send_bytes(msg)
        a.recv_bytes()
    dt = time.perf_counter() - t
    p.join()
    return dt / n * 1e6


def lock_ops_per_s(n=300_000):
    lock = mp.Lock()
    t = time.perf_counter()
    for _ in range(n):
        lock.acquire()
        lock.release()
    return n / (time.perf_counter() - t)


def square(x):
    return x * x


def pool_map_tasks_per_s(n=100_000):
    with mp.Pool(2) as pool:
        pool.map(square, range(100))  # warm the workers up, as the C++ side does
        t = time.perf_counter()
        out = pool.map(square, range(n))
        dt = time.perf_counter() - t
    assert out[-1] == (n - 1) ** 2
    return n / dt


if __name__ == "__main__":
    mp.set_start_method("fork")
    which = sys.argv[1:] or ["queue", "pipe", "lock", "pool"]
    fns = {"queue": queue_msgs_per_s, "pipe": pipe_round_trip_us, "lock": lock_ops_per_s, "pool": pool_map_tasks_per_s}
    for w in which:
        print(w, f"{fns[w]():.6g}", flush=True)
