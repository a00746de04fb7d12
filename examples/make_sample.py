"""Write the demo's sample dataset: support chats of "Cadence Cycles", a fictional bike shop.

Written for this project (nothing downloaded): a few hundred short, consistent conversations in OpenAI chat
format (some with a system message, some multi-turn), so a tiny model can pick up the shop's facts, plus a handful
of deliberately faulty lines so the preparation report shows what a rejection looks like. Deterministic:

    python examples/make_sample.py            # rewrites examples/support-bot.jsonl
    python -m shared prepare examples/support-bot.jsonl --out /tmp/support-bot
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

SYSTEM = "You are the friendly support assistant of Cadence Cycles, a bike shop in Riverton. Answer briefly."

# topic -> (user phrasings, answer variants, optional follow-up (question, answer) pairs)
TOPICS: dict[str, tuple[list[str], list[str], list[tuple[str, str]]]] = {
    "hours": (
        [
            "When are you open?",
            "What are your opening hours?",
            "Are you open on Sunday?",
            "What time do you close today?",
            "Can I come by on Saturday morning?",
            "What are the shop hours this week?",
        ],
        [
            "We are open Tuesday to Saturday, 9:00 to 18:00, and Sunday 10:00 to 14:00. We are closed on Mondays.",
            "Our hours are Tuesday-Saturday 9:00-18:00 and Sunday 10:00-14:00; Monday is our day off.",
        ],
        [("And on public holidays?", "On public holidays we open 10:00 to 14:00, like a Sunday.")],
    ),
    "location": (
        [
            "Where is the shop?",
            "What's your address?",
            "How do I find you?",
            "Is there parking near the store?",
            "Which street are you on?",
        ],
        [
            "We are at 12 Mill Lane in Riverton, next to the train station. There is free bike parking at the door "
            "and car parking behind the building.",
            "You will find us at 12 Mill Lane, Riverton, two minutes from the station, with parking behind the shop.",
        ],
        [("Can I bring my bike on the train?", "Yes, Riverton trains take bikes outside rush hours.")],
    ),
    "returns": (
        [
            "Can I return a bike I bought?",
            "What is your return policy?",
            "I want to return a helmet, is that possible?",
            "How many days do I have to return something?",
            "Can I get a refund for unused parts?",
        ],
        [
            "You can return unused items within 30 days with the receipt for a full refund. Bikes must be unridden "
            "and in their original condition.",
            "Returns are accepted within 30 days with proof of purchase; items must be unused, and we refund to the "
            "original payment method.",
        ],
        [("How long does the refund take?", "Refunds reach your account within 5 business days.")],
    ),
    "warranty": (
        [
            "Does my bike have a warranty?",
            "How long is the warranty on a new bike?",
            "My frame cracked, is that covered?",
            "What does the warranty cover?",
        ],
        [
            "New bikes come with a lifetime warranty on the frame and 2 years on components. Wear parts such as "
            "tires, chains and brake pads are not covered.",
            "Frames are covered for life and components for 2 years; normal wear like tires and brake pads is not.",
        ],
        [("What do I need to bring?", "Bring the bike and your receipt; we handle the claim with the maker.")],
    ),
    "repair": (
        [
            "Can I book a repair?",
            "How do I get my bike serviced?",
            "My gears are skipping, can you fix it?",
            "How long does a repair take?",
            "Do I need an appointment for a repair?",
        ],
        [
            "Yes! Book a repair slot on our website or call 555-0142. Most repairs are done within 2 working days.",
            "You can book online or call us at 555-0142. Small fixes are often same day; most repairs take up to "
            "2 working days.",
        ],
        [("Can I wait while you fix it?", "For flat tires and brake adjustments, yes: about 30 minutes.")],
    ),
    "tuneup": (
        [
            "How much is a tune-up?",
            "What does a basic service cost?",
            "What's included in a tune-up?",
            "Do you have a full service package?",
        ],
        [
            "A basic tune-up is 59 euros: gears and brakes adjusted, chain cleaned and lubed, tires checked. The full "
            "service is 129 euros and includes a wheel true and bearing check.",
            "Basic tune-up: 59 euros (adjust gears and brakes, clean chain, check tires). Full service: 129 euros, "
            "adding wheel truing and bearings.",
        ],
        [],
    ),
    "flat": (
        [
            "I have a flat tire, what should I do?",
            "How do I fix a puncture?",
            "My tire keeps going flat.",
            "How much do you charge to fix a flat?",
        ],
        [
            "We fix flats while you wait for 15 euros including a new inner tube. If it keeps happening, check the "
            "tire for a thorn or glass and the rim tape for damage.",
            "Bring it in: a flat repair is 15 euros with a new tube, done in about 15 minutes. Repeated flats usually "
            "mean something is stuck in the tire.",
        ],
        [],
    ),
    "pressure": (
        [
            "What tire pressure should I use?",
            "How much air should I put in my tires?",
            "What PSI for a road bike?",
            "What pressure for mountain bike tires?",
        ],
        [
            "Road bikes usually run 80-100 psi, hybrids 50-70 psi and mountain bikes 25-35 psi. The range is printed "
            "on the side of your tire.",
            "Check the tire sidewall for the range. As a guide: road 80-100 psi, hybrid 50-70 psi, mountain 25-35 psi.",
        ],
        [],
    ),
    "chain": (
        [
            "How often should I oil my chain?",
            "My chain is squeaking.",
            "What lube should I use on my chain?",
            "How do I clean my chain?",
        ],
        [
            "Lube the chain every 200 km, or after riding in the rain. Wipe it clean first, apply one drop per link, "
            "then wipe off the extra. We sell dry and wet lube for 9 euros.",
            "A squeaky chain needs lube: clean it with a rag, put a drop on each link, and wipe off the excess. Do it "
            "every 200 km or after rain.",
        ],
        [],
    ),
    "sizing": (
        [
            "What size bike do I need?",
            "I am 1.80 m tall, which frame size fits me?",
            "How do I know my frame size?",
            "Can you help me choose the right size?",
        ],
        [
            "Come in for a free fitting: it takes 15 minutes. As a rough guide, riders of 1.70-1.80 m usually ride a "
            "medium frame and 1.80-1.90 m a large.",
            "We offer a free 15-minute fitting in the shop. Roughly: 1.70-1.80 m is a medium frame, "
            "1.80-1.90 m a large.",
        ],
        [],
    ),
    "ebike": (
        [
            "How long does an e-bike battery last?",
            "How far can I ride on one charge?",
            "How should I store my e-bike battery in winter?",
            "Do you service e-bikes?",
        ],
        [
            "Our e-bikes go 60 to 100 km per charge depending on the assist level. Store the battery indoors at about "
            "half charge in winter. Yes, we service all e-bikes we sell.",
            "Expect 60-100 km per charge. For winter, keep the battery inside at 40-60% charge. We service e-bikes "
            "and test batteries for free.",
        ],
        [("How long does charging take?", "A full charge takes about 4 hours.")],
    ),
    "shipping": (
        [
            "Do you ship online orders?",
            "How long does delivery take?",
            "How much is shipping?",
            "Can you deliver a bike to my home?",
        ],
        [
            "We ship parts and accessories in 2-3 working days; shipping is free over 50 euros, otherwise 4.95 euros. "
            "Bikes are delivered assembled within 20 km of Riverton for 25 euros.",
            "Parts ship in 2-3 working days, free above 50 euros. We deliver assembled bikes near Riverton "
            "for 25 euros.",
        ],
        [],
    ),
    "order": (
        [
            "Where is my order?",
            "How can I track my order?",
            "My order hasn't arrived yet.",
            "I didn't get a tracking number.",
        ],
        [
            "You will find the tracking link in your confirmation email. If it has not arrived after 5 working days, "
            "send us your order number at help@cadencecycles.example and we will check.",
            "The confirmation email has your tracking link. No news after 5 working days? Email your order number to "
            "help@cadencecycles.example.",
        ],
        [],
    ),
    "payment": (
        [
            "Which payment methods do you accept?",
            "Can I pay in installments?",
            "Do you take credit cards?",
            "Can I pay with my phone?",
        ],
        [
            "We accept cash, debit and credit cards, and phone payments. For bikes over 500 euros you can pay in "
            "3 or 6 monthly installments at no extra cost.",
            "Cash, cards and phone payments are all fine. Bikes over 500 euros can be paid in 3 or 6 interest-free "
            "installments.",
        ],
        [],
    ),
    "rental": (
        [
            "Do you rent bikes?",
            "How much is a bike rental for a day?",
            "Can I rent an e-bike for the weekend?",
            "Do rentals include a helmet?",
        ],
        [
            "Yes: city bikes are 20 euros a day and e-bikes 45 euros a day, helmet and lock included. A weekend "
            "(Friday to Monday) costs two days.",
            "We rent city bikes for 20 euros/day and e-bikes for 45 euros/day with a helmet and lock. Weekends are "
            "charged as two days.",
        ],
        [("Do I need to book?", "Book ahead in summer; the rest of the year you can usually just walk in.")],
    ),
    "tradein": (
        [
            "Can I trade in my old bike?",
            "Do you buy used bikes?",
            "How much is my old bike worth?",
        ],
        [
            "Yes, we take trade-ins toward a new bike. Bring it in and we will give you a price in 10 minutes, based "
            "on its age and condition.",
            "We accept trade-ins against a new bike; a quick check in the shop (about 10 minutes) gives you a price.",
        ],
        [],
    ),
    "kids": (
        [
            "Do you have bikes for kids?",
            "What size bike for a 6 year old?",
            "Do you sell balance bikes?",
        ],
        [
            "Yes! We have balance bikes for ages 2-4, 16-inch bikes for ages 4-6 and 20-inch bikes for ages 6-9. "
            "Bring your child for a test ride.",
            "We stock balance bikes (2-4 years), 16-inch (4-6 years) and 20-inch (6-9 years). Kids can test ride in "
            "the shop.",
        ],
        [],
    ),
    "helmet": (
        [
            "How should a helmet fit?",
            "How do I choose a helmet?",
            "When should I replace my helmet?",
        ],
        [
            "A helmet should sit level, two fingers above your eyebrows, with the straps forming a V under each ear. "
            "Replace it after any crash or every 5 years.",
            "Wear it level, two fingers above the brows, straps in a V below the ears. Replace it after a crash or "
            "after 5 years.",
        ],
        [],
    ),
    "giftcard": (
        [
            "Do you sell gift cards?",
            "How long is a gift card valid?",
            "Can I use a gift card online?",
        ],
        [
            "Yes, gift cards from 10 to 500 euros, valid for 2 years, in the shop and online.",
            "We sell gift cards of 10-500 euros. They are valid for 2 years and work both in store and online.",
        ],
        [],
    ),
    "brakes": (
        [
            "My brakes are squeaking.",
            "My brakes feel soft, what should I do?",
            "How often should brake pads be replaced?",
        ],
        [
            "Squeaky or soft brakes usually need new pads or an adjustment. Pads last about 2000 km. A brake "
            "adjustment is 15 euros and takes 30 minutes while you wait.",
            "That is often worn pads or a cable that needs tightening. Pads last around 2000 km; we adjust brakes "
            "for 15 euros in about 30 minutes.",
        ],
        [],
    ),
}
GREETINGS = ["", "", "", "Hi! ", "Hello, ", "Hey there. ", "Good morning! ", "Quick question: "]
THANKS = [("Thanks!", "You're welcome! Ride safe."), ("Great, thank you.", "Happy to help. See you at the shop!")]


def conversations(rng: random.Random, count: int) -> list[dict]:
    seen: set[str] = set()
    out: list[dict] = []
    topics = sorted(TOPICS)
    while len(out) < count:
        topic = topics[len(out) % len(topics)]
        questions, answers, follow_ups = TOPICS[topic]
        messages = []
        if rng.random() < 0.3:
            messages.append({"role": "system", "content": SYSTEM})
        question = rng.choice(GREETINGS) + rng.choice(questions)
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": rng.choice(answers)}]
        if follow_ups and rng.random() < 0.35:
            follow_q, follow_a = rng.choice(follow_ups)
            messages += [{"role": "user", "content": follow_q}, {"role": "assistant", "content": follow_a}]
        if rng.random() < 0.15:
            thanks_q, thanks_a = rng.choice(THANKS)
            messages += [{"role": "user", "content": thanks_q}, {"role": "assistant", "content": thanks_a}]
        key = json.dumps(messages)
        if key in seen:
            continue
        seen.add(key)
        out.append({"messages": messages})
    return out


def faulty_lines(good: list[dict]) -> list[tuple[int, str]]:
    """(position, line) pairs: one of each common mistake, so the report shows rejections and warnings."""
    return [
        (17, '{"messages": [{"role": "user", "content": "Do you sell bells?"}, {"role": "assistant", "content": "Yes"'),
        (
            41,
            json.dumps(
                {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Open Monday?"}]}
            ),
        ),
        (
            73,
            json.dumps(
                {
                    "messages": [
                        {"role": "customer", "content": "Do you sell lights?"},
                        {"role": "assistant", "content": "Yes, front and rear lights from 15 euros."},
                    ]
                }
            ),
        ),
        (101, json.dumps(good[5])),  # an exact duplicate of an earlier conversation
        (
            150,
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": "   "},
                        {"role": "assistant", "content": "Could you tell me more?"},
                    ]
                }
            ),
        ),
        (
            188,
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": "Do you fix wheels?"},
                        {"role": "assistant", "content": "Yes, wheel truing is 20 euros."},
                        {"role": "user", "content": "ok"},
                    ]
                }
            ),
        ),  # kept: the trailing user message is dropped with a warning
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=300, help="good conversations (default 300)")
    parser.add_argument("--seed", type=int, default=20261120)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "support-bot.jsonl")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    good = conversations(rng, args.count)
    lines = [json.dumps(row, ensure_ascii=False) for row in good]
    for position, line in faulty_lines(good):
        lines.insert(position, line)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} lines ({len(good)} good conversations) to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
