#!/usr/bin/python3
"""The demo's player: plays the customer stories of DESIGN.md into the
spool folder of a running `tactd run`, with times relative to now, and
afterwards tells whether every message the stories should produce arrived.

usage: play.py play DIR [--fast]   writes DIR/expected.json, then the stories into DIR/spool
       play.py summary DIR         compares DIR/expected.json with DIR/webhook.jsonl and DIR/smtp.jsonl

`play` writes each observation file as DIR/spool/NNN-story-S.jsonl.tmp and
renames it when complete (the spool source reads *.jsonl only); every
`observed_at` is the moment the file is written. It prints a short caption
per step and, after the last step, waits until every expected message has
arrived at the local servers (sinks.py) or the time is up. --fast compresses
every offset six-fold (the laptop's promise breaks at +20 s, not +2 min).
`summary` prints the messages per story, kind and channel, and exits 1 when
one is missing or one arrived that no story asked for (a duplicate).
"""
import datetime
import json
import os
import sys
import time
from collections import Counter
from zoneinfo import ZoneInfo

COLOUR = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
FAST_SCALE = 1 / 6
FULL_DEADLINE = 160  # seconds after the start; .ci/demo stops everything within three minutes
FAST_DEADLINE = 40


def style(code, text):
    return f"\033[{code}m{text}\033[0m" if COLOUR else text


def say(text):
    os.write(sys.stdout.fileno(), (text + "\n").encode("utf-8", "replace"))


# The customers: one per story, so that the daily cap (3 per customer)
# hides nothing; Dutch and English, email and SMS.
ANNA = {"name": "Anna de Vries", "email": "anna@example.nl", "phone": "+31612345678", "locale": "nl",
        "timezone": "Europe/Amsterdam", "prefers": "sms"}
BEN = {"name": "Ben Carter", "email": "ben@example.co.uk", "phone": "+447700900123", "locale": "en-GB",
       "timezone": "Europe/London", "prefers": "sms"}
CARLA = {"name": "Carla Jansen", "email": "carla@example.nl", "phone": "+31687654321", "locale": "nl",
         "timezone": "Europe/Amsterdam", "prefers": "email"}
ZOE = {"name": "Zoë Visser", "email": "zoe@example.nl", "locale": "nl", "timezone": "Europe/Amsterdam",
       "prefers": "email"}
EMMA = {"name": "Emma Brown", "email": "emma@example.com", "locale": "en", "timezone": "Europe/London",
        "prefers": "email"}
FATIMA = {"name": "Fatima El Amrani", "email": "fatima@example.nl", "phone": "+31655501234", "locale": "nl",
          "timezone": "Europe/Amsterdam", "prefers": "sms", "situations": ["payment_difficulty"]}
GRACE = {"name": "Grace Miller", "email": "grace@example.com", "locale": "en", "timezone": "Europe/London",
         "prefers": "email"}


class Step:
    """At `at` seconds (before compression) after the start: write these
    observations, print the caption, and expect these messages
    (story, kind, channel, to)."""

    def __init__(self, at, story, caption, observations=(), expect=()):
        self.at, self.story, self.caption = at, story, caption
        self.observations, self.expect = list(observations), list(expect)


def script(start, scale):
    """The stories, as steps with offsets from `start`."""

    def moment(seconds):  # a time in the story, `seconds` (before compression) after the start
        return start + datetime.timedelta(seconds=seconds * scale)

    def stamp(at):
        return at.isoformat(timespec="seconds")

    def clock(at, customer, seconds=False):  # as the customer's own clock shows it
        return at.astimezone(ZoneInfo(customer["timezone"])).strftime("%H:%M:%S" if seconds else "%H:%M")

    def obs(kind, id_, **fields):  # observed_at is filled in when the file is written
        return {"type": kind, "id": id_, "fields": fields}

    promised = moment(122)
    # The carrier's ETAs are in whole minutes, as carriers give them, and far
    # enough past the promise that the messages (which show minutes) differ.
    late_eta = (promised + datetime.timedelta(minutes=6)).replace(second=0)
    flapped_eta = (promised + datetime.timedelta(minutes=4)).replace(second=0)
    silence_ends = moment(112)  # Grace's last contact was 180 days before this
    effective = (start + datetime.timedelta(days=40)).date()

    return [
        Step(2, 4, f"Ben's laptop (order L-4711) is promised by {clock(promised, BEN, True)}, two minutes from now; "
                   f"the carrier's ETA is {clock(late_eta, BEN)}, after the promise -> a heads-up with the new time",
             [obs("customer", "c-ben", **BEN),
              obs("order", "L-4711", customer="c-ben", status="shipped", total=1249.00, currency="EUR",
                  merchant="Laptop Corner", promised_by=stamp(promised)),
              obs("shipment", "S-4711", order="L-4711", status="out_for_delivery", carrier="DHL",
                  tracking="JD014600004711", eta=stamp(late_eta))],
             [(4, "heads_up", "sms", BEN["phone"])]),
        Step(8, 1, "Anna orders dinner at Trattoria Da Marco (order A-1001)",
             [obs("customer", "c-anna", **ANNA),
              obs("order", "A-1001", customer="c-anna", status="placed", total=31.40, currency="EUR",
                  merchant="Trattoria Da Marco", promised_by=stamp(start + datetime.timedelta(minutes=40)))]),
        Step(16, 1, "the restaurant cancels A-1001 half an hour before dinner, 'onze keuken is vanavond overbelast' "
                    "-> an apology at once",
             [obs("order", "A-1001", customer="c-anna", status="cancelled",
                  cancel_reason="onze keuken is vanavond overbelast", total=31.40, currency="EUR",
                  merchant="Trattoria Da Marco", promised_by=stamp(start + datetime.timedelta(minutes=40)))],
             [(1, "apology", "sms", ANNA["phone"])]),
        Step(24, 5, "Carla's parcel (order W-5501, shipment S-5501) is out for delivery",
             [obs("customer", "c-carla", **CARLA),
              obs("order", "W-5501", customer="c-carla", status="shipped", total=64.95, currency="EUR",
                  merchant="Woonwinkel Linnen & Zo"),
              obs("shipment", "S-5501", order="W-5501", status="out_for_delivery", carrier="PostNL",
                  tracking="3SDEMO5501")]),
        Step(34, 5, "the delivery fails: the van cannot reach the street -> an explanation with the next step",
             [obs("shipment", "S-5501", status="delivery_failed",
                  exception_reason="de bezorgbus kon de straat niet in door werkzaamheden")],
             [(5, "explanation", "email", CARLA["email"])]),
        Step(42, 3, "Zoë places her first order at Pizzeria Bella Napoli (order P-301)",
             [obs("customer", "c-zoe", **ZOE),
              obs("order", "P-301", customer="c-zoe", status="placed", total=27.50, currency="EUR",
                  merchant="Pizzeria Bella Napoli")]),
        Step(52, 3, "P-301 is delivered, her first completed order -> a thank-you, nothing to sell",
             [obs("order", "P-301", status="delivered")],
             [(3, "thank_you", "email", ZOE["email"])]),
        Step(60, 8, f"the carrier's ETA for Ben's laptop flaps to {clock(flapped_eta, BEN)} -> no second heads-up",
             [obs("shipment", "S-4711", eta=stamp(flapped_eta))]),
        Step(68, 2, "Emma's yoga class at Fit & Fun Gym costs 39.00 a month",
             [obs("customer", "c-emma", **EMMA),
              obs("subscription", "SUB-42", customer="c-emma", plan="yoga", price=39.00,
                  currency="EUR", merchant="Fit & Fun Gym")]),
        Step(74, 2, f"the gym raises it to 45.00 from {effective.isoformat()} (40 days' notice), with its reason "
                    "-> the reason behind the price change",
             [obs("subscription", "SUB-42", next_price=45.00, price_effective=effective.isoformat(),
                  price_reason="the rent of our studio went up by a third this year")],
             [(2, "price_change_reason", "email", EMMA["email"])]),
        Step(84, 6, "Fatima, who is going through a hard time (situation: payment_difficulty), has a payment due",
             [obs("customer", "c-fatima", **FATIMA),
              obs("payment", "P-9", customer="c-fatima", status="due", amount=64.90, currency="EUR",
                  due_date=start.date().isoformat(), merchant="Sportschool Fit")]),
        Step(92, 6, "her payment becomes overdue -> an explanation offering an arrangement, never a dunning letter",
             [obs("payment", "P-9", status="overdue")],
             [(6, "explanation", "sms", FATIMA["phone"])]),
        Step(100, 7, f"Grace was last in touch 180 days before {clock(silence_ends, GRACE, True)} "
                     "-> a check-in when that silence is complete",
             [obs("customer", "c-grace", **GRACE,
                  last_contact_at=stamp(silence_ends - datetime.timedelta(days=180)))],
             [(7, "check_in", "email", GRACE["email"])]),
        Step(118, 8, "the restaurant's system sends Anna's cancellation again -> nothing new, no second apology",
             [obs("order", "A-1001", customer="c-anna", status="cancelled",
                  cancel_reason="onze keuken is vanavond overbelast", total=31.40, currency="EUR",
                  merchant="Trattoria Da Marco", promised_by=stamp(start + datetime.timedelta(minutes=40)))]),
        Step(121.5, 4, f"at {clock(promised, BEN, True)} the promise breaks and the laptop is not there "
                       "-> an apology (from the daemon's timer; no observation)",
             [], [(4, "apology", "sms", BEN["phone"])]),
        Step(145, 4, "the laptop is delivered -> a follow-up asking whether all is well",
             [obs("shipment", "S-4711", status="delivered"), obs("order", "L-4711", status="delivered")],
             [(4, "follow_up", "sms", BEN["phone"])]),
    ]


def expectations(steps):
    return [{"story": s, "kind": k, "channel": c, "to": t} for step in steps for (s, k, c, t) in step.expect]


def received(folder):
    out = []
    for name in ("webhook.jsonl", "smtp.jsonl"):
        try:
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                out.extend(json.loads(line) for line in f if line.strip())
        except FileNotFoundError:
            pass
    return out


def write_observations(spool, number, step):
    written = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    lines = [json.dumps({"type": o["type"], "id": o["id"], "observed_at": written, "fields": o["fields"]},
                        ensure_ascii=False) for o in step.observations]
    path = os.path.join(spool, f"{number:03d}-story-{step.story}.jsonl")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.rename(path + ".tmp", path)


def play(folder, fast):
    scale = FAST_SCALE if fast else 1.0
    start = datetime.datetime.now().astimezone().replace(microsecond=0)
    t0 = time.monotonic()
    steps = script(start, scale)
    expected = expectations(steps)
    with open(os.path.join(folder, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)
    for number, step in enumerate(steps, 1):
        time.sleep(max(0.0, t0 + step.at * scale - time.monotonic()))
        if step.observations:
            write_observations(os.path.join(folder, "spool"), number, step)
        say(f"{style('1;36', '>> ' + datetime.datetime.now().strftime('%H:%M:%S'))}  "
            f"{style('1;36', f'story {step.story}')}  {style('36', step.caption)}")
    deadline = t0 + (FAST_DEADLINE if fast else FULL_DEADLINE)
    while len(received(folder)) < len(expected) and time.monotonic() < deadline:
        time.sleep(0.2)
    got = len(received(folder))
    say(style("2", f"   player: {got} of {len(expected)} expected messages have arrived" +
              ("" if got >= len(expected) else "; the time is up")))


def summary(folder):
    with open(os.path.join(folder, "expected.json"), encoding="utf-8") as f:
        expected = json.load(f)
    messages = received(folder)
    # Email carries no kind; each demo address expects one kind of email.
    email_kind = {}
    for e in expected:
        if e["channel"] == "email":
            email_kind.setdefault(e["to"], set()).add(e["kind"])
    for m in messages:
        if not m.get("kind"):
            kinds = email_kind.get(m["to"], set())
            m["kind"] = next(iter(kinds)) if len(kinds) == 1 else "?"
    want = Counter((e["story"], e["kind"], e["channel"], e["to"]) for e in expected)
    story_of = {e["to"]: e["story"] for e in expected}
    got = Counter((story_of.get(m["to"], "?"), m["kind"], m["channel"], m["to"]) for m in messages)
    rows = sorted(set(want) | set(got), key=lambda r: (str(r[0]), r[1], r[3]))
    say(f"   {'story':<6}{'kind':<21}{'channel':<9}{'to':<22}{'expected':>9}{'arrived':>9}")
    problems = []
    for row in rows:
        ok = want[row] == got[row]
        mark = style("32", "ok") if ok else style("1;31", "MISSING" if got[row] < want[row] else "EXTRA")
        say(f"   {row[0]!s:<6}{row[1]:<21}{row[2]:<9}{row[3]:<22}{want[row]:>9}{got[row]:>9}  {mark}")
        if not ok:
            problems.append(row)
    unsigned = [m for m in messages if m["channel"] == "sms" and not m.get("signed", True)]
    repeats = [m for m in messages if m.get("repeat")]
    say(f"   story 8: {len(repeats)} repeated deliveries, "
        f"{sum(max(0, got[r] - want[r]) for r in rows)} unexpected messages")
    if unsigned:
        say(style("1;31", f"   {len(unsigned)} webhook requests had a bad signature"))
    if problems or unsigned:
        missing = sum(max(0, want[r] - got[r]) for r in rows)
        extra = sum(max(0, got[r] - want[r]) for r in rows)
        say(style("1;31", f"demo FAILED: {missing} expected messages missing, {extra} unexpected"))
        return 1
    say(style("1;32", f"   all {len(expected)} expected messages arrived, each once"))
    return 0


def main():
    args = sys.argv[1:]
    if len(args) >= 2 and args[0] == "play" and args[2:] in ([], ["--fast"]):
        play(args[1], args[2:] == ["--fast"])
        return 0
    if len(args) == 2 and args[0] == "summary":
        return summary(args[1])
    sys.exit(__doc__)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
