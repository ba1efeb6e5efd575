"""setup.py: builds libclipcl.so with CMake and puts it inside the package,
so that `pip install ./python` (from a clipcl checkout) gives a package that
needs nothing else at run time but the system libraries libclipcl links.

Environment:
  CLIPCL_SOURCE_DIR  the clipcl checkout (default: this folder's parent)
  CLIPCL_BUILD_DIR   an existing CMake build folder of it to reuse (only the
                     shared library target is built there); default: a fresh
                     folder under setuptools' build_temp
  CLIPCL_LIBRARY     a libclipcl.so to copy as is (nothing is built)
  CMAKE              the cmake program (default: cmake)
"""
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))


def _run(cmd):
    print("clipcl:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        dest = os.path.join(self.build_lib, "clipcl")
        os.makedirs(dest, exist_ok=True)
        lib = os.environ.get("CLIPCL_LIBRARY")
        if not lib:
            lib = self._build_library()
        # one file under the SONAME's name: no symlinks inside a wheel
        shutil.copyfile(os.path.realpath(lib), os.path.join(dest, "libclipcl.so.0"))

    def _build_library(self):
        src = os.path.abspath(os.environ.get("CLIPCL_SOURCE_DIR") or os.path.join(HERE, ".."))
        if not os.path.exists(os.path.join(src, "CMakeLists.txt")) or not os.path.isdir(os.path.join(src, "kernels")):
            raise SystemExit("clipcl: %s is not a clipcl checkout: install from one (`pip install ./python`), or "
                             "set CLIPCL_SOURCE_DIR, or CLIPCL_LIBRARY to a built libclipcl.so" % src)
        cmake = os.environ.get("CMAKE", "cmake")
        build = os.environ.get("CLIPCL_BUILD_DIR")
        if not build:
            build = os.path.abspath(os.path.join(self.get_finalized_command("build").build_temp, "libclipcl"))
            _run([cmake, "-S", src, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DCLIPCL_BENCH=OFF"])
        jobs = str(os.cpu_count() or 1)
        _run([cmake, "--build", build, "--target", "clipcl_shared", "-j", jobs])
        lib = os.path.join(build, "libclipcl.so")
        if not os.path.exists(lib):
            raise SystemExit("clipcl: the build did not produce %s" % lib)
        return lib


class BinaryDistribution(Distribution):
    """The wheel holds a compiled library: tag it for this platform."""

    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildWithLibrary}, distclass=BinaryDistribution)
