"""runc's command line: one module per verb, each with ``FLAGS`` and ``run(ctx, args)``."""
