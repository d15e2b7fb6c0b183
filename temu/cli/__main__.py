"""``python -m temu.cli``: the ``temu`` command."""

import sys

from . import main

sys.exit(main())
