"""The one error type the core raises for bad input.

Every message is one line that names the value and what was expected, so the
command line can print it as it is and exit 2.
"""


class ConfigError(ValueError):
    """A bad config, argument, file or value, described in one line."""


class CapabilityError(ConfigError):
    """A valid setting one engine cannot run (a schedule a static graph cannot take).

    `dualtrain compare` shows such an engine as skipped, with this message.
    """
