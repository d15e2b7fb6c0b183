"""Build glue: put ``temu-pyiqa-hook.pth`` at the top of site-packages. Everything else is in setup.cfg.

``site`` runs ``import`` lines only from .pth files directly in a site directory, so the file must
sit at the root of the wheel:

- regular wheel (``pip install .``): the extra ``build`` sub-command copies it into ``build_lib``,
  whose root becomes the wheel's root (and it is listed in RECORD, so ``pip uninstall`` removes it);
- editable wheel (``pip install -e .``, PEP 660): setuptools discards ``build_lib`` and ships the
  folder it set as ``install_lib`` (beside its own ``__editable__`` files), so it goes there.
"""

import os

from setuptools import Command, setup
from setuptools.command.build import build

HOOK_FILES = ["temu-pyiqa-hook.pth"]
# In editable mode, also a real copy of the hook module: pip byte-compiles it at install, rather than
# the editable finder serving (and, where bytecode is not cached, recompiling) the checkout's copy.
EDITABLE_COPIES = ["_temu_pyiqa_hook.py"]


class build_pyiqa_hook(Command):
    """Copy the pyiqa start-up hook's .pth file to the root of the (editable) wheel."""

    description = "install the .pth that registers temu's metrics with pyiqa"
    user_options = []

    def initialize_options(self):
        self.build_lib = None
        self.editable_mode = False

    def finalize_options(self):
        self.set_undefined_options("build_py", ("build_lib", "build_lib"))

    def run(self):
        names = list(HOOK_FILES)
        if self.editable_mode:
            target = self.get_finalized_command("install").install_lib
            names += EDITABLE_COPIES
        else:
            target = self.build_lib
        self.mkpath(target)
        for name in names:
            self.copy_file(name, os.path.join(target, name))

    # setuptools' SubCommand protocol
    def get_source_files(self):
        return list(HOOK_FILES)

    def get_outputs(self):
        return [os.path.join(self.build_lib, name) for name in HOOK_FILES]

    def get_output_mapping(self):
        return {os.path.join(self.build_lib, name): name for name in HOOK_FILES}


class build_with_hook(build):
    sub_commands = build.sub_commands + [("build_pyiqa_hook", None)]


setup(cmdclass={"build": build_with_hook, "build_pyiqa_hook": build_pyiqa_hook})
