"""Good manners inside someone else's process: no process-wide setting changed (numba's cache folder), our
kernels cache in our folder while the app's own cached functions stay in theirs, llama.cpp silent, no
logging handlers, libllvmlite loaded before llama.cpp, and a clear error when `kernels` is not ours."""
import json
import os
import subprocess
import sys
import textwrap

from numba.core import event

from kernels._first_compile import NOTICE, _FirstCompileNotice


def _python(code, cwd, env=None, **kw):
    env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, **kw)


def test_import_and_use_leave_numba_cache_dir_unchanged(tmp_path):
    code = """
        import json, numba
        before = numba.config.CACHE_DIR
        import engine
        after_import = numba.config.CACHE_DIR
        e = engine.Engine(n_ctx=256)
        e.create_completion(prompt="Hi", max_tokens=2, seed=1)
        print(json.dumps([before, after_import, numba.config.CACHE_DIR]))
    """
    for user_dir in ("", str(tmp_path / "their-numba-cache")):
        r = _python(code, tmp_path, {"NUMBA_CACHE_DIR": user_dir})
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == [user_dir] * 3


def test_kernels_cache_in_our_folder_and_the_apps_functions_in_theirs(tmp_path):
    (tmp_path / "userfuncs.py").write_text("from numba import njit\n\n@njit(cache=True)\ndef plus_one(x):\n"
                                           "    return x + 1\n")
    code = """
        import json
        import engine, kernels
        from kernels._cache import kernel_cache_dir
        e = engine.Engine(n_ctx=256)
        e.create_completion(prompt="Hi", max_tokens=2, seed=1)
        import userfuncs
        assert userfuncs.plus_one(1) == 2
        ours = kernels.sample_step._cache._impl.locator.get_cache_path()
        theirs = userfuncs.plus_one._cache._impl.locator.get_cache_path()
        print(json.dumps([ours, theirs, str(kernel_cache_dir())]))
    """
    r = _python(code, tmp_path, {"NUMBA_CACHE_DIR": ""})
    assert r.returncode == 0, r.stderr
    ours, theirs, our_dir = json.loads(r.stdout)
    assert ours.startswith(our_dir + os.sep) and os.listdir(ours)
    assert theirs == str(tmp_path / "__pycache__")  # numba's default for the app: next to its source
    assert any(f.startswith("userfuncs.plus_one") for f in os.listdir(theirs))
    assert not any(f.startswith("userfuncs") for f in os.listdir(ours))


def test_overload_implementations_use_our_folder_too():
    # @overload bodies are jitted when a kernel first compiles, long after import: located per function.
    from kernels import bits
    from kernels._cache import KernelCacheLocator, kernel_cache_dir

    impl = bits._int_bits_to_float_jit(None)
    locator = KernelCacheLocator.from_function(impl, bits.__file__)
    assert locator.get_cache_path().startswith(str(kernel_cache_dir()))
    assert KernelCacheLocator.from_function(test_overload_implementations_use_our_folder_too, __file__) is None


def test_a_completion_is_silent_and_adds_no_logging_handlers(tmp_path):
    code = """
        import logging
        from engine import Engine
        with Engine(n_ctx=256) as e:
            e.create_completion(prompt="Hi", max_tokens=3, seed=1)
        print(len(logging.getLogger().handlers), logging.getLogger().level)
    """
    r = _python(code, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr in ("", NOTICE)  # nothing from llama.cpp; the notice only if the kernel cache was cold
    assert r.stdout.split() == ["0", str(30)]  # no handlers, WARNING untouched


def test_llvmlite_is_loaded_before_llama_cpp(tmp_path):
    code = """
        import sys
        import engine
        from llvmlite.binding import ffi
        print("llama_cpp" in sys.modules, ffi.lib._lib_handle is not None)
    """
    r = _python(code, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "True"]


def test_someone_elses_kernels_package_fails_at_import(tmp_path):
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels" / "__init__.py").write_text('"""Hugging Face kernels, say."""\n')
    r = _python("import engine", tmp_path)  # the current folder comes first on sys.path
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: sampling-engine needs its own top-level package `kernels`")
    assert str(tmp_path / "kernels" / "__init__.py") in last
    assert "pip uninstall kernels" in last and "virtual environment" in last


class _Dispatcher:
    def __init__(self, module):
        self.py_func = type("F", (), {"__module__": module})()


def test_first_compile_notice_once_and_only_for_our_kernels(capsys):
    notice = _FirstCompileNotice()
    for module in ("userpkg.mod", "kernels.step", "kernels.nucleus"):
        notice.on_start(event.Event("numba:compile", event.EventStatus.START, {"dispatcher": _Dispatcher(module)}))
    assert capsys.readouterr().err == NOTICE
