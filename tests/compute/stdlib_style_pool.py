"""A script written for the standard library's multiprocessing, unmodified.

tests/compute/test_multiprocessing.py runs it as is and with its import line
switched to ``from xtremehub import multiprocessing``; the output must be identical.
"""

import multiprocessing
import time


def square(x):
    return x * x


def slow_square(x):
    time.sleep(0.01 * (x % 3))
    return x * x


def add(a, b):
    return a + b


def increment(counter, lock, times):
    for _ in range(times):
        with lock:
            counter.value += 1


def main():
    with multiprocessing.Pool(2) as pool:
        print("map", pool.map(square, range(10)))
        print("imap", list(pool.imap(square, range(10), chunksize=3)))
        print("imap_unordered", sorted(pool.imap_unordered(slow_square, range(20))))
        print("starmap", pool.starmap(add, [(1, 2), (3, 4)]))
        result = pool.apply_async(add, (5, 6))
        print("apply_async", result.get(timeout=60), result.successful())
        print("map_async", pool.map_async(square, [7, 8]).get(timeout=60))
        print("apply", pool.apply(divmod, (17, 5)))
        try:
            pool.map(int, ["1", "x"])
        except ValueError as exc:
            print("error", type(exc).__name__, exc)
    queue = multiprocessing.Queue()
    processes = [multiprocessing.Process(target=queue.put, args=(i,)) for i in range(3)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    print("processes", sorted(queue.get(timeout=30) for _ in processes), [p.exitcode for p in processes])
    counter = multiprocessing.Value("i", 0)
    lock = multiprocessing.Lock()
    workers = [multiprocessing.Process(target=increment, args=(counter, lock, 50)) for _ in range(2)]
    for p in workers:
        p.start()
    for p in workers:
        p.join()
    print("value", counter.value)


if __name__ == "__main__":
    multiprocessing.freeze_support()
    main()
