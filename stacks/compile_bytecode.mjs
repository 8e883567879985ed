// Compiles every .py under a folder into __pycache__/*.cpython-3XY.pyc with CPython as Pyodide
// ships it (WebAssembly), for a Lambda runtime whose Python this machine does not have.
// Bytecode is the same on every platform; only the Python version (the magic number) matters.
// Then checks every .py has a pyc this CPython accepts for it: its magic number, checked-hash
// flags (PEP 552) and the hash of the source as it is now, with a code object inside.
// Usage: node compile_bytecode.mjs <pyodide folder> <folder> <path of the folder at run time>
//        node compile_bytecode.mjs <pyodide folder> <folder> --check   (check only)
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [pyodideDir, folder, runtimeDir] = process.argv.slice(2);
const { loadPyodide } = await import(pathToFileURL(join(pyodideDir, "pyodide.mjs")).href);
const py = await loadPyodide({ indexURL: pyodideDir + "/" });
py.FS.mkdirTree("/asset");
py.FS.mount(py.FS.filesystems.NODEFS, { root: folder }, "/asset");
py.globals.set("runtime_dir", runtimeDir);
const result = py.runPython(`
import compileall, importlib.util, marshal, pathlib, py_compile, sys, types

def compile_all():
    # checked-hash pycs: valid whatever times the zip gives the files, and the interpreter still
    # compares them with the source, so a stale one is never used
    return compileall.compile_dir(
        "/asset", ddir=runtime_dir, quiet=1, workers=1,
        invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
    )

def problems():
    found = []
    for source in sorted(pathlib.Path("/asset").rglob("*.py")):
        pyc = pathlib.Path(importlib.util.cache_from_source(str(source)))
        name = str(source.relative_to("/asset"))
        if not pyc.is_file():
            found.append(f"{name}: no pyc")
            continue
        data = pyc.read_bytes()
        flags = int.from_bytes(data[4:8], "little")
        if data[:4] != importlib.util.MAGIC_NUMBER or flags != 3:
            found.append(f"{name}: not a checked-hash pyc of this Python")
        elif data[8:16] != importlib.util.source_hash(source.read_bytes()):
            found.append(f"{name}: stale")
        elif not isinstance(marshal.loads(data[16:]), types.CodeType):
            found.append(f"{name}: no code object")
    return found

compiled = runtime_dir == "--check" or compile_all()
found = problems() if compiled else ["compileall failed"]
"\\n".join([f"{sys.implementation.cache_tag} {len(found)} problem(s)", *found])
`);
console.log(result);
process.exit(result.split("\n")[0].endsWith(" 0 problem(s)") ? 0 : 1);
