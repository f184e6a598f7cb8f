"""The `cloudmask` command line: parse, call the library, print. No work happens here.

One module per command group, registered on one app in help order; shared options in
`options`.
"""

from cloudmask_cli.cli import masking, products, training  # noqa: F401 - registers commands
from cloudmask_cli.cli.common import app, main

__all__ = ["app", "main"]
