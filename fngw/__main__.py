import sys

from fngw.cli import main

sys.exit(main())
