"""A replica in its own process, driven through stdin (used by test_net.py).

Usage: net_child.py DIR ALLOWED_PEER_ID

Writes one document, listens on tcp://127.0.0.1:* admitting ALLOWED_PEER_ID,
prints "READY <endpoint> <id>", then answers one command per stdin line:
  digest              -> "DIGEST <hex>"
  doc COLL ID         -> "DOC <json of the document>"
  write COLL ID F V   -> sets field F to the string V, prints "OK"
Exits (closing the replica) on "quit" or end of input.
"""
import json
import sys

import shoal


def main(argv):
    path, allowed = argv[1], argv[2]
    with shoal.Replica(path) as r:
        d = r.doc("notes", "from-child")
        d.update({"text": "written in the child", "n": 1})
        d.counter("stock").add(7)
        endpoint = r.listen("tcp://127.0.0.1:*", allow=[allowed])
        print("READY", endpoint, r.id, flush=True)
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            if words[0] == "quit":
                break
            if words[0] == "digest":
                print("DIGEST", r.digest(), flush=True)
            elif words[0] == "doc":
                print("DOC", json.dumps(r.doc(words[1], words[2]).to_dict()), flush=True)
            elif words[0] == "write":
                r.doc(words[1], words[2])[words[3]] = words[4]
                print("OK", flush=True)
            else:
                print("ERROR unknown command", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
