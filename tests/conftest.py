import os
import sys

# The top-level packages (engine/, clip/, datasets/, trainers/, tools/) run from the repository root.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
