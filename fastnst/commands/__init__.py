"""CLI subcommands: each module defines ``register(subparsers)`` and a ``run(args) -> int`` set as its handler.

Adding a command means adding its module name to ``COMMANDS`` below; modules import heavy dependencies inside
``run`` so ``fastnst --help`` stays fast.
"""

COMMANDS: tuple[str, ...] = ("train", "stylize", "serve", "optimize", "export", "bench", "models")
