"""``python -m clipforge_cli`` is the ``clipforge`` command."""

import sys

from clipforge_cli.entry import main

sys.exit(main())
