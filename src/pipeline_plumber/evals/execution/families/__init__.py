"""One module per command: `@family("<command>", properties=(...))` functions. See the package
docstring of `pipeline_plumber.evals.execution` for how to write one."""
