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


# torch raises these built-in types where user code may catch them; each is also
# a ConfigError, so the command line still prints one line and exits 2.


class ConfigTypeError(ConfigError, TypeError):
    """A value of the wrong kind (a number where a function is expected), as torch's TypeError."""


class ConfigKeyError(ConfigError, KeyError):
    """A missing entry (a param group without `initial_lr`), as torch's KeyError."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigRuntimeError(ConfigError, RuntimeError):
    """A state that changed under a scheduler (param groups added), as torch's RuntimeError."""
