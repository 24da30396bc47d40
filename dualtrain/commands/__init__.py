"""One module per `dualtrain` subcommand, each with `add_parser` and `run`."""
