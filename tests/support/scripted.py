"""What the loopback servers of the tests share: the port file a test waits
for, and the answers a test scripts (DIR/answers.json, a list; each request
takes and removes the first entry)."""
import json
import os


def take_answer(folder):
    """The next scripted answer, or None when there is none."""
    path = os.path.join(folder, "answers.json")
    try:
        with open(path, encoding="utf-8") as f:
            answers = json.load(f)
    except FileNotFoundError:
        return None
    if not answers:
        return None
    first = answers.pop(0)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(answers, f)
    os.rename(path + ".tmp", path)
    return first


def write_port(folder, port):
    """DIR/port, written whole at once: the test starts once it exists."""
    with open(os.path.join(folder, "port.tmp"), "w", encoding="utf-8") as f:
        f.write(str(port))
    os.rename(os.path.join(folder, "port.tmp"), os.path.join(folder, "port"))
