#!/usr/bin/env python3
"""Runs the curl examples of a README against a running server, as written.

Usage: readme-examples.py README URL TOKEN

Every ```sh block of the README that calls curl is an example script. Its first paragraph (up
to the first blank line) is its prelude: the token and the `gql` helper, with `TOKEN=...` given
the real token and the README's address replaced by URL. Every later paragraph is one example,
run by bash after the prelude exactly as the README spells it, except for the placeholders a
reader fills in from an earlier answer: `<id>` (the first conversation id an answer showed)
and `<token from the payload>` (the last consistency token an answer carried). An example
fails when bash fails, the answer is not JSON, carries `errors`, has no `data`, or any
`userErrors` in it is not empty.

Then the README's `userErrors` examples are held to what the server sends: the blank reply's
error exactly, the closed conversation's field and code.
"""

import json
import re
import subprocess
import sys

README_ADDRESS = "http://127.0.0.1:8080/graphql"


def fail(message):
    print(f"readme-examples: {message}", file=sys.stderr)
    sys.exit(1)


def walk(value):
    """Every (key, value) pair of the JSON value, depth first, in document order."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield key, inner
            yield from walk(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from walk(inner)


def run(prelude, command):
    """Runs `command` after `prelude` in bash; the answer's JSON."""
    done = subprocess.run(
        ["bash", "-c", f"set -euo pipefail\n{prelude}\n{command}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        fail(f"exit {done.returncode}: {command}\n{done.stderr}")
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        fail(f"the answer is not JSON: {command}\n{done.stdout}")


def answered(command, answer):
    """Fails unless `answer` is data without errors and without userErrors."""
    if answer.get("errors") or not isinstance(answer.get("data"), dict):
        fail(f"{command}\nanswered {json.dumps(answer, indent=2)}")
    for key, value in walk(answer["data"]):
        if key == "userErrors" and value:
            fail(f"{command}\nanswered userErrors {json.dumps(value)}")


def documented(text, label):
    """The JSON object the README shows after `label` in a code span (`...` left out)."""
    found = re.search(re.escape(label) + r"\s*`(\{.*?\})`", text, re.S)
    if not found:
        fail(f"the README no longer shows {label!r}")
    return json.loads(found.group(1).replace(", ...", ""))


def main():
    readme, url, token = sys.argv[1:4]
    text = open(readme, encoding="utf-8").read()
    blocks = [b for b in re.findall(r"```sh\n(.*?)```", text, re.S) if "curl" in b]
    if not blocks:
        fail("the README has no curl example")
    placeholders = {}
    # The first block's prelude defines `gql`, which the userErrors checks below use; later
    # blocks may define other helpers instead.
    first_prelude = None
    ran = 0
    for block in blocks:
        paragraphs = [p for p in re.split(r"\n\s*\n", block) if p.strip()]
        prelude = re.sub(r"^TOKEN=.*$", f"TOKEN='{token}'", paragraphs[0], flags=re.M)
        prelude = prelude.replace(README_ADDRESS, url)
        if prelude == paragraphs[0]:
            fail(f"the example's prelude sets no TOKEN nor {README_ADDRESS}:\n{paragraphs[0]}")
        first_prelude = first_prelude or prelude
        for paragraph in paragraphs[1:]:
            command = "\n".join(
                line for line in paragraph.splitlines() if not line.lstrip().startswith("#")
            )
            for placeholder, value in placeholders.items():
                command = command.replace(placeholder, value)
            unknown = re.findall(r"<[a-z][a-z ]*>", command)
            if unknown:
                fail(f"no earlier answer fills {unknown} in:\n{command}")
            answer = run(prelude, command)
            answered(command, answer)
            ran += 1
            for key, value in walk(answer["data"]):
                if key == "conversations" and "<id>" not in placeholders:
                    ids = [e["node"]["id"] for e in value.get("edges", []) if "id" in e["node"]]
                    if ids:
                        placeholders["<id>"] = ids[0]
                if key == "consistencyToken" and value:
                    placeholders["<token from the payload>"] = value
    conversation = placeholders.get("<id>")
    if not conversation:
        fail("no example showed a conversation id")

    # The README's userErrors examples against the server's answers.
    def mutate(name, input_type, fields):
        query = (
            f"mutation($input: {input_type}!) {{ {name}(input: $input) "
            "{ userErrors { field message code } } }"
        )
        body = json.dumps({"query": query, "variables": {"input": fields}})
        answer = run(first_prelude, f"gql -d {shell_quote(body)}")
        if answer.get("errors"):
            fail(f"{name} answered {json.dumps(answer, indent=2)}")
        return answer["data"][name]["userErrors"]

    blank = mutate("sendReply", "SendReplyInput", {"conversationId": conversation, "bodyText": " "})
    expected = documented(text, "a blank reply:")
    if blank != [expected]:
        fail(f"the README shows {expected} for a blank reply; the server sends {blank}")
    action = {"conversationId": conversation}
    mutate("closeConversation", "ConversationActionInput", action)
    again = mutate("closeConversation", "ConversationActionInput", action)
    expected = documented(text, "closing a closed conversation:")
    if len(again) != 1 or any(again[0].get(k) != v for k, v in expected.items()):
        fail(f"the README shows {expected} for closing twice; the server sends {again}")
    print(f"readme-examples: {ran} examples and 2 userErrors examples ran as documented")


def shell_quote(text):
    return "'" + text.replace("'", "'\\''") + "'"


if __name__ == "__main__":
    main()
