"""The child process of `dualtrain.isolation`: `python -m dualtrain.child FOLDER`.

It imports only dualtrain and what the job in FOLDER names, never the user's
script; see `dualtrain.isolation` for the protocol.
"""

import sys

from dualtrain.isolation import child_main

if __name__ == "__main__":
    child_main(sys.argv[1])
