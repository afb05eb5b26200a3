"""Build hook (the rest of the build configuration is in pyproject.toml).

The wheel carries the study's browser experiment, jsPsych included: pyproject.toml's
package-data names jsPsych's files in ``fvlab/study/web/node_modules`` (installed by npm, not
committed), and setuptools copies them into the wheel at build time. Without them the wheel's
``fvlab study serve`` would not start, so a wheel or sdist build fails here when a
``node_modules`` pattern matches no file. Editable installs (``pip install -e .``, run by
``make setup`` before ``make web``) read the files in place and are not checked.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithBrowserAssets(build_py):
    """``build_py`` that first checks that every node_modules file of package-data exists."""

    def run(self) -> None:
        if not getattr(self, "editable_mode", False):
            package_dir = Path(self.get_package_dir("fvlab"))
            patterns = self.distribution.package_data.get("fvlab", [])
            missing = [p for p in patterns if "node_modules" in p and not any(package_dir.glob(p))]
            if missing:
                raise SystemExit(
                    f"fvlab's wheel needs jsPsych, but {package_dir / missing[0]} is missing: "
                    "run `make web` (npm ci in fvlab/study/web) before building"
                )
        super().run()


setup(cmdclass={"build_py": BuildWithBrowserAssets})
