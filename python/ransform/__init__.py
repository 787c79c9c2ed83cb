"""ransform: learned image compression on a fast, exact, crash-proof rANS coder."""
from ransform._core import StreamError
