"""Package discovery, which pyproject.toml cannot express for this layout.

The top-level folders (server/, inference/, indexes/, addin_manifest/, installer/) are fixed by the project
layout; they install as deskpilot.server, deskpilot.inference, ... so that we never put packages with
generic names like "server" into a user's site-packages. Every package under them is found, not listed:
a new feature package needs no edit here. Everything else about the project is in pyproject.toml.
"""

from setuptools import find_packages, setup

TOPS = ("server", "inference", "indexes", "addin_manifest", "installer")

setup(
    package_dir={f"deskpilot.{top}": top for top in TOPS},
    packages=[
        f"deskpilot.{top}{'.' + sub if sub else ''}" for top in TOPS for sub in ("", *find_packages(top))
    ],
)
