# An Ansible connection into a chroot, for running the dsmr_twin role into an SD-card image
# while it is built (deploy/image/provision-root). ansible-core has no chroot connection (it
# lives in a collection), and this is all the role needs: commands through chroot(8) and files
# copied under the root. The host is the root directory (ansible_host).
from __future__ import annotations

DOCUMENTATION = """
    name: dsmr_twin_chroot
    short_description: run tasks inside a chroot directory on the controller
    description:
        - Commands run through chroot(8) in the directory named by ansible_host; files are
          copied under it. Needs root on the controller and, for a foreign architecture,
          qemu-user-static registered with binfmt_misc.
    author: dsmr-twin
    options:
        remote_addr:
            description: the root directory of the chroot
            default: inventory_hostname
            vars:
                - name: ansible_host
"""

import os
import shutil
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleFileNotFound
from ansible.plugins.connection import ConnectionBase


class Connection(ConnectionBase):  # type: ignore[misc]
    transport = "dsmr_twin_chroot"
    has_pipelining = False
    default_user = "root"

    def _root(self) -> str:
        root = str(self.get_option("remote_addr"))
        if not os.path.isfile(os.path.join(root, "bin", "sh")):
            raise AnsibleConnectionFailure(f"{root} is not a root file system (no /bin/sh)")
        return root

    def _connect(self) -> Connection:
        self._root()
        self._connected = True
        return self

    def exec_command(
        self, cmd: str, in_data: bytes | None = None, sudoable: bool = False
    ) -> tuple[int, bytes, bytes]:
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        done = subprocess.run(
            ["chroot", self._root(), "/bin/sh", "-c", cmd],
            input=in_data,
            capture_output=True,
            check=False,
        )
        return done.returncode, done.stdout, done.stderr

    def _inside(self, path: str) -> str:
        return os.path.join(self._root(), path.lstrip("/"))

    def put_file(self, in_path: str, out_path: str) -> None:
        super().put_file(in_path, out_path)
        if not os.path.exists(in_path):
            raise AnsibleFileNotFound(f"file or module does not exist: {in_path}")
        shutil.copyfile(in_path, self._inside(out_path))

    def fetch_file(self, in_path: str, out_path: str) -> None:
        super().fetch_file(in_path, out_path)
        shutil.copyfile(self._inside(in_path), out_path)

    def close(self) -> None:
        self._connected = False
