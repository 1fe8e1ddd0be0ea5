"""doit entry point for kittydoit: run the work packages of a spec-kitty feature with AI coding agents.

    doit -n 4                  implement and review every WP, four at a time
    doit list                  the WPs, with their titles
    doit forget WP03           make WP03 run again (and, after it, the WPs that depend on it)
    doit run feature=002-x     choose the feature when kitty-specs/ holds several

Written by `kittydoit init`; all logic lives in the kittydoit package (pip install kittydoit).
"""

from kittydoit.dodo import doit_namespace

globals().update(doit_namespace(__file__))
