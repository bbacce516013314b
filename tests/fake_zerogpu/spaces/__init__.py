"""A stand-in for Hugging Face's ``spaces`` package that treats decorated functions as ZeroGPU does, where it
matters to the app: each call runs in a forked process, its arguments and what it returns (or each item a generator
yields) are pickled across, and nothing else comes back; the duration is computed from the call's own arguments.
Each call is logged (function, seconds asked for) as a JSON line to $FAKE_ZEROGPU_LOG.

There is no GPU here: the forked process computes on the CPU, so this checks the hand-over, not CUDA.
"""

import inspect
import json
import multiprocessing
import os
import pickle
import traceback


def _log(function, seconds) -> None:
    path = os.environ.get("FAKE_ZEROGPU_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"function": function.__qualname__, "seconds": seconds}) + "\n")


def _child(function, payload, results) -> None:
    try:
        args, kwargs = pickle.loads(payload)
        if inspect.isgeneratorfunction(function):
            for item in function(*args, **kwargs):
                results.put(("item", pickle.dumps(item)))
        else:
            results.put(("result", pickle.dumps(function(*args, **kwargs))))
    except BaseException as error:  # noqa: BLE001 - handed to the parent, as ZeroGPU does
        results.put(("error", f"{type(error).__name__}: {error}\n{traceback.format_exc()}"))
    results.put(("end", None))


def _calls(function, duration, args, kwargs):
    seconds = duration(*args, **kwargs) if callable(duration) else duration
    assert isinstance(seconds, int | float) and 0 < seconds <= 300, seconds
    _log(function, seconds)
    payload = pickle.dumps((args, kwargs))  # what can't be pickled fails here, as on ZeroGPU
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    process = context.Process(target=_child, args=(function, payload, results), daemon=True)
    process.start()
    try:
        while True:
            kind, value = results.get(timeout=300)
            if kind == "end":
                return
            if kind == "error":
                raise RuntimeError(f"in the GPU process: {value}")
            yield kind, pickle.loads(value)
    finally:
        process.join(timeout=60)
        if process.is_alive():
            process.kill()


def GPU(task=None, *, duration=60, size=None):  # noqa: N802 - the real package's name
    def decorate(function):
        if inspect.isgeneratorfunction(function):
            def generator_wrapper(*args, **kwargs):
                for _, item in _calls(function, duration, args, kwargs):
                    yield item
            return generator_wrapper

        def wrapper(*args, **kwargs):
            for _, result in _calls(function, duration, args, kwargs):
                return result
            return None
        return wrapper

    return decorate(task) if callable(task) else decorate


def gradio_auto_wrap(function):  # Gradio calls this on every event when `spaces` is imported; off by default
    return function


def enable_gradio_auto_wrap() -> None:
    pass


def disable_gradio_auto_wrap() -> None:
    pass
