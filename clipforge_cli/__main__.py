"""``python -m clipforge_cli`` is the ``clipforge`` command."""

import sys

from clipforge_cli.main import main

sys.exit(main())
