# Only for mypy (see [tool.mypy] in pyproject.toml). Installed, `deskpilot` is a namespace package; here it
# is a regular one, because mypy ranks a module below a data folder of the same name inside a namespace
# package (inference/templates.py and inference/templates/).
