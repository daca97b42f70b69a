"""Request batching, as TensorFlow Serving's batching does it.

A request of a batchable signature joins the open batch of its signature and
batch key (`Signature.batch_key`: equal scalar arguments and input shapes);
the first request of a batch waits at most `batch_window_ms` for others, and
a batch closes early once it holds `max_batch_size` rows. A closed batch runs
as one call on a free worker thread (`workers` of them); the outputs are cut
back into each request's rows. While every worker is busy a batch stays open
and keeps filling, so batches grow with the load instead of queueing up.

A request of a signature that cannot be batched (or with batching off) is a
batch of its own and goes straight to the workers. If a merged call fails,
its requests are run again one by one, so one bad request fails alone.
A request whose caller stopped waiting (timeout, closed connection) before
its batch ran is dropped from the batch.
"""

import asyncio
import collections
import concurrent.futures
import time

import numpy as np

from zoo.serving.limits import ServingError


class _Item:
    __slots__ = ("request", "future")

    def __init__(self, request, future):
        self.request = request
        self.future = future


class _Batch:
    def __init__(self, signature, key):
        self.signature = signature
        self.key = key
        self.items = []
        self.rows = 0
        self.closed = asyncio.Event()


class Batcher:
    """Runs signature calls for the server: batching, worker threads, statistics.

    Args:
        config: The `ServeConfig` (batch window and size, workers).
    """

    def __init__(self, config):
        self.config = config
        self.executor = concurrent.futures.ThreadPoolExecutor(config.workers, thread_name_prefix="zoo-serve")
        self.stats = collections.defaultdict(collections.Counter)
        self._loop = None
        self._slots = None
        self._open = {}
        self._tasks = set()  # dispatch tasks, held so that none is collected while it runs

    def _spawn(self, loop, coroutine):
        task = loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _bind(self):
        """Asyncio objects belong to one event loop; make them afresh for a new one (tests run several)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop = loop
            self._slots = asyncio.Semaphore(self.config.workers)
            self._open = {}
        return loop

    async def run(self, signature, request):
        """The outputs ({name: array}) of `signature` for `request` (a `tensors.Request`)."""
        loop = self._bind()
        item = _Item(request, loop.create_future())
        stats = self.stats[(signature.model.name, signature.name)]
        stats["requests"] += 1
        stats["rows"] += request.rows
        key = signature.batch_key(request) if self.config.batching else None
        if key is None or request.rows >= self.config.max_batch_size:
            batch = _Batch(signature, None)
            batch.items.append(item)
            batch.rows = request.rows
            batch.closed.set()
            self._spawn(loop, self._dispatch(batch, 0.0))
        else:
            full_key = (signature.model.name, signature.name, key)
            batch = self._open.get(full_key)
            if batch is not None and batch.rows + request.rows > self.config.max_batch_size:
                self._close(full_key, batch)
                batch = None
            if batch is None:
                batch = _Batch(signature, full_key)
                self._open[full_key] = batch
                self._spawn(loop, self._dispatch(batch, self.config.batch_window_ms / 1000.0))
            batch.items.append(item)
            batch.rows += request.rows
            if batch.rows >= self.config.max_batch_size:
                self._close(full_key, batch)
        return await item.future

    def _close(self, key, batch):
        if self._open.get(key) is batch:
            del self._open[key]
        batch.closed.set()

    async def _dispatch(self, batch, window):
        if window > 0:
            try:
                await asyncio.wait_for(batch.closed.wait(), window)
            except asyncio.TimeoutError:
                pass
        async with self._slots:
            self._close(batch.key, batch)  # a batch still open while the workers were busy closes now
            items = [item for item in batch.items if not item.future.done()]
            if not items:
                return
            try:
                results = await asyncio.get_running_loop().run_in_executor(
                    self.executor, self._call, batch.signature, [item.request for item in items])
            except Exception as error:  # noqa: BLE001  (handed to the waiting requests)
                results = [error] * len(items)
        for item, result in zip(items, results):
            if item.future.done():
                continue
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)

    def _call(self, signature, requests):
        """In a worker thread: one call for all `requests`; a list of outputs (or exceptions), one per request."""
        stats = self.stats[(signature.model.name, signature.name)]
        started = time.perf_counter()

        def alone(request):
            try:
                return signature.call(request.arrays)
            except Exception as error:  # noqa: BLE001  (handed to the request's caller)
                return error

        if len(requests) == 1:
            results = [alone(requests[0])]
        else:
            try:
                results = split_outputs(signature.call(merge_inputs(signature, requests)),
                                        [r.rows for r in requests])
            except Exception:  # noqa: BLE001  one bad request must not fail the others: run them alone
                stats["batches_retried_alone"] += 1
                results = [alone(request) for request in requests]
        stats["calls"] += 1
        stats["call_seconds"] += time.perf_counter() - started
        if len(requests) > 1:
            stats["batched_calls"] += 1
            stats["batched_requests"] += len(requests)
        stats["largest_batch"] = max(stats["largest_batch"], len(requests))
        return results

    def snapshot(self):
        """Statistics by "model/signature": requests, rows, calls, batched calls, ..."""
        shown = {}
        for (model, signature), counts in sorted(self.stats.items()):
            entry = dict(counts)
            entry["call_seconds"] = round(entry.get("call_seconds", 0.0), 3)
            calls = entry.get("calls", 0)
            entry["mean_requests_per_call"] = round(entry.get("requests", 0) / calls, 2) if calls else None
            shown[f"{model}/{signature}"] = entry
        return shown

    def close(self):
        """Wait for the calls that are running, then stop the worker threads."""
        self.executor.shutdown(wait=True)


def merge_inputs(signature, requests):
    """The inputs of one call for several requests: batched inputs concatenated, scalars shared."""
    merged = {}
    for name, spec in signature.inputs.items():
        if spec.is_scalar:
            merged[name] = requests[0].arrays[name]
        else:
            merged[name] = np.concatenate([r.arrays[name] for r in requests], axis=0)
    return merged


def split_outputs(outputs, rows):
    """Cut each output of a merged call back into the requests' rows (`rows`: rows per request)."""
    total = sum(rows)
    for name, value in outputs.items():
        if np.ndim(value) == 0 or np.shape(value)[0] != total:
            raise ServingError(500, f"output '{name}' of a batched call has {np.shape(value)} for {total} rows")
    cuts = np.cumsum(rows)[:-1]
    pieces = {name: np.split(value, cuts, axis=0) for name, value in outputs.items()}
    return [{name: pieces[name][i] for name in outputs} for i in range(len(rows))]
