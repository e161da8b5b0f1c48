import sys

from vmacd.cli.main import main

sys.exit(main())
