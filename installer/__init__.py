"""Deployment for IT: `deskpilot install`, `uninstall` and `doctor` (see installer/README.md).

    from deskpilot.installer import InstallOptions, install, uninstall, doctor
    install(InstallOptions(health_check=False))

Certificates (`_ca`), trust stores (`_nss` on Linux; certutil/security commands on Windows/macOS),
autostart and policy files (`_platforms`, templates in `templates/`) are separate modules; `_install`
orders them and records what it created so that `uninstall` removes exactly that.
"""

from deskpilot.installer._ca import CA_NAME
from deskpilot.installer._doctor import doctor
from deskpilot.installer._health import unit_command
from deskpilot.installer._install import InstallOptions, install, layout, uninstall

__all__ = ["CA_NAME", "InstallOptions", "doctor", "install", "layout", "uninstall", "unit_command"]
