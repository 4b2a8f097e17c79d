"""
Minimal configurator, in the nanoGPT manner: run from train.py with
    exec(open('configurator.py').read())
it overrides train.py's globals from the command line. An argument without
'=' names a Python file to execute first; an argument --key=value replaces
the global `key`, keeping its type (--batch_size=32 must stay an int).
"""
import sys
from ast import literal_eval

for arg in sys.argv[1:]:
    if '=' not in arg:
        assert not arg.startswith('--'), f"{arg}: overrides are written --key=value"
        print(f"reading overrides from {arg}")
        with open(arg) as f:
            exec(f.read())
        continue
    assert arg.startswith('--'), f"{arg}: overrides are written --key=value"
    key, value = arg[2:].split('=', 1)
    if key not in globals():
        raise ValueError(f"unknown config key: {key}")
    try:
        parsed = literal_eval(value)
    except (SyntaxError, ValueError):
        parsed = value  # a bare word stays a string
    assert type(parsed) == type(globals()[key]), f"{key} must stay a {type(globals()[key]).__name__}"
    print(f"overriding {key} = {parsed!r}")
    globals()[key] = parsed
