"""Global flags shared by every verb, and error reporting in runc's format."""

import json
import sys
import time


class Context:
    def __init__(self, root: str, log: str | None, log_format: str, debug: bool) -> None:
        self.root = root
        self.log = log
        self.log_format = log_format
        self.debug = debug

    def log_line(self, level: str, message: str) -> None:
        """Append one line to --log: JSON (containerd takes the last level=error msg) or text."""
        if not self.log:
            return
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if self.log_format == "json":
            line = json.dumps({"level": level, "msg": message, "time": now})
        else:
            line = f'time="{now}" level={level} msg={json.dumps(message)}'
        try:
            with open(self.log, "a") as log:
                log.write(line + "\n")
        except OSError:
            pass

    def error(self, message: str) -> None:
        self.log_line("error", message)
        sys.stderr.write(message + "\n")

    def warn(self, message: str) -> None:
        self.log_line("warning", message)
        sys.stderr.write("warning: " + message + "\n")
