"""Build tests/data/corpus_sample.jsonl (python tests/data/make_corpus_sample.py): hand-written mathematical prose, with and without the behaviors."""

import json
import random
from pathlib import Path

R = "rich"
M = "minimal"
N = "not_math"
D = "no_solution"
# (kind, hand label counts v/b/s/bc, problem, solution, template)
T = [
    (
        R,
        (2, 1, 1, 0),
        True,
        True,
        "Solve {a}x + {b} = {c}. First we need to isolate the term with x, so subtract {b} from both sides: {a}x = {d}. "
        "Dividing by {a} gives x = {e}. Let's check: {a} times {e} is {d}, and {d} + {b} = {c}, which matches. "
        "At first I tried dividing everything by {b}, but that doesn't work, since {a} is not divisible by {b}; instead we subtract first. "
        "Plugging x = {e} back in confirms the equation holds.",
    ),
    (
        R,
        (1, 1, 1, 1),
        True,
        True,
        "Problem: find two numbers whose sum is {c} and whose difference is {b}. Working backwards from the answer we want: "
        "to get a difference of {b}, we need the larger number to be {b} more than the smaller. First we need to find the smaller number. "
        "I guessed {a} and {g}, but that doesn't work because their sum is wrong. Let's try another approach: call the smaller one s, then "
        "s + (s + {b}) = {c}, so 2s = {h} and s = {i}. The numbers are {i} and {j}. Let's verify: {i} + {j} = {c} and {j} - {i} = {b}, as expected.",
    ),
    (
        R,
        (2, 0, 2, 1),
        True,
        True,
        "How many multiples of {a} lie between 1 and {k}? The plan is to count the largest multiple first. Our first goal is "
        "to find the largest multiple of {a} not above {k}: working backwards from {k}, we divide {k} by {a} and get {l} with remainder {m}. "
        "So there are {l} multiples. As a check, {a} times {l} is {n}, which is at most {k}, and {a} times {o} is {p}, which is too large. "
        "We can verify the count by listing the first few: {a}, {q}, {r}, and so on.",
    ),
    (
        R,
        (1, 2, 0, 0),
        True,
        True,
        "Evaluate the integral of {a}x from 0 to {b}. My first attempt used substitution u = x^2, but this approach fails because the "
        "integrand has no factor of x to absorb. Scratch that: the antiderivative of {a}x is simply {a}x^2/2. "
        "Wait, I wrote the limits the wrong way round; going back to the start, the value is {a} times {b}^2 / 2 = {s}. "
        "Let's double-check by differentiating: the derivative of {a}x^2/2 is {a}x, which is correct.",
    ),
    (
        R,
        (1, 0, 1, 2),
        True,
        True,
        "Prove that if n^2 is even then n is even. We want to show the contrapositive, so it suffices to show that an odd n has an odd square. "
        "Starting from the conclusion we want, an odd square, what do we need? We need n = 2k + 1 for some integer k. "
        "Then n^2 = 4k^2 + 4k + 1 = 2(2k^2 + 2k) + 1, which is odd. For example with k = {a}, n = {t} and n^2 = {u}, which is odd, as expected.",
    ),
    (
        R,
        (3, 1, 0, 0),
        True,
        True,
        "A rectangle has perimeter {v} and width {a}. Find its area. The length is ({v} - 2 times {a}) / 2 = {w}. Let's check the perimeter: "
        "2 times {w} plus 2 times {a} is {v}, which matches. I first computed the area as {x}, but there's a mistake: I added instead of multiplying. "
        "Instead, the area is {a} times {w} = {y}. Let me verify once more: {y} divided by {a} is {w}, which agrees with the length.",
    ),
    (
        M,
        (0, 0, 0, 0),
        True,
        True,
        "Solve {a}x + {b} = {c}. Subtracting {b} from both sides gives {a}x = {d}. Dividing both sides by {a} gives x = {e}. "
        "Therefore the solution of the equation is x = {e}. In general, an equation of the form ax + b = c with a nonzero has the single solution x = (c - b) / a, "
        "obtained by the same two operations applied in the same order. Each operation applied to both sides keeps the two sides equal, "
        "so the solution set of the equation never changes along the way.",
    ),
    (
        M,
        (0, 0, 0, 0),
        True,
        True,
        "Problem: two numbers have sum {c} and difference {b}. Adding the two equations s + t = {c} and t - s = {b} gives 2t = {z}, "
        "so t = {j}. Then s = {c} - {j} = {i}. The numbers are {i} and {j}. The same elimination solves any pair of linear equations "
        "in which one equation gives the sum and the other the difference of the two unknowns. The answer is unique because the "
        "two lines have different slopes and meet in exactly one point of the plane.",
    ),
    (
        M,
        (0, 0, 0, 0),
        True,
        True,
        "How many multiples of {a} lie between 1 and {k}? The multiples are {a}, {q}, {r} and so on up to {n}. "
        "Dividing {k} by {a} gives the quotient {l} with remainder {m}. Hence there are {l} multiples of {a} in the range. "
        "In general the number of multiples of a positive integer d between 1 and N is the integer part of N / d. "
        "The largest multiple in the range is {n}, the product of {a} and {l}.",
    ),
    (
        M,
        (0, 0, 0, 0),
        True,
        True,
        "Evaluate the integral of {a}x from 0 to {b}. The antiderivative of {a}x is {a}x^2/2. Evaluating at the limits gives "
        "{a} times {b}^2 / 2 minus 0, which equals {s}. So the integral is {s}. Geometrically this is the area of the triangle under "
        "the line y = {a}x between x = 0 and x = {b}, with base {b} and height {a} times {b}. The integrand is a straight line through "
        "the origin, so the region is a right triangle and its area is half of base times height.",
    ),
    (
        M,
        (0, 0, 0, 0),
        True,
        True,
        "Theorem. If n is odd then n^2 is odd. Proof. Write n = 2k + 1 for an integer k. Then n^2 = 4k^2 + 4k + 1 = 2(2k^2 + 2k) + 1, "
        "an odd number. For instance k = {a} gives n = {t} and n^2 = {u}. This proves the theorem. By the contrapositive, "
        "whenever n^2 is even the integer n is even as well, a fact used in the proof that the square root of 2 is irrational. The argument is short.",
    ),
    (
        M,
        (0, 0, 0, 0),
        True,
        True,
        "A rectangle has perimeter {v} and width {a}. Its length is ({v} - 2 times {a}) / 2 = {w}. "
        "The area is the product of length and width, {a} times {w} = {y}. The rectangle therefore has area {y}. "
        "A square with the same perimeter would have side {v} / 4 and a larger area, since among rectangles of a given perimeter the square has the largest area. "
        "All lengths are in metres.",
    ),
    (
        D,
        (0, 0, 0, 0),
        False,
        False,
        "Definition. A prime number is an integer p > 1 whose only positive divisors are 1 and p. The first primes are 2, 3, 5, 7, 11 and {pr}. "
        "A polynomial function f(x) = x^2 + {a}x + {b} has degree 2; its graph is a parabola, and the equation f(x) = 0 has at most two roots.",
    ),
    (
        N,
        (0, 0, 0, 0),
        False,
        False,
        "Our bakery opens at {oc} on weekdays. Let's check the weather before the picnic; if it rains, that doesn't work, so instead we "
        "will meet at the library. First we need to buy bread, cheese and apples from the market near the station.",
    ),
    (
        N,
        (0, 0, 0, 0),
        False,
        False,
        "The history of the town goes back to the Roman period, when a small fort guarded the river crossing. Later a market grew around "
        "the church, and the town received its charter in {year} from the Bishop of Durham.",
    ),
]
PRIMES = [13, 17, 19, 23, 29, 31, 37, 41]


def draw(rng: random.Random, copy: int, t_index: int) -> dict:
    """The numbers of one document (consistent with each other: the equations in it hold)."""
    a = rng.randint(2, 9)
    b = rng.choice([n for n in range(2, 10) if n != a])
    e = rng.randint(2, 20)
    d = a * e
    c = d + b
    i = rng.randint(3, 30)
    j = i + b
    cc = i + j
    k = rng.randint(40, 150)
    quotient, m = divmod(k, a)
    v = 2 * (a + rng.randint(3, 15))
    w = (v - 2 * a) // 2
    values = dict(
        a=a,
        b=b,
        c=c if t_index not in (1, 7) else cc,
        d=d,
        e=e,
        g=a + 1,
        h=2 * i,
        i=i,
        j=j,
        k=k,
        l=quotient,
        m=m,
        n=a * quotient,
        o=quotient + 1,
        p=a * (quotient + 1),
        q=2 * a,
        r=3 * a,
        s=a * b * b / 2,
        t=2 * a + 1,
        u=(2 * a + 1) ** 2,
        v=v,
        w=w,
        x=a + w,
        y=a * w,
        z=2 * j,
        pr=PRIMES[copy],
        oc=["six", "seven", "eight", "nine", "ten", "half past seven", "half past eight"][copy],
        year=1120 + 10 * copy,
    )
    s = values["s"]
    values["s"] = int(s) if s == int(s) else s
    return values


rows = []
rng = random.Random(0)
seen = set()
for copy in range(7):
    for t_index, (kind, hand, problem, solution, text) in enumerate(T):
        document = text.format(**draw(rng, copy, t_index))
        while document in seen:  # every text of the sample is unique
            document = text.format(**draw(rng, copy, t_index))
        seen.add(document)
        row = {"id": f"doc-{copy:02d}-{t_index:02d}", "text": document, "kind": kind}
        if copy == 0:  # the hand-labelled ones (the other copies share their structure, not their checking)
            row["hand_label"] = {
                "verification": hand[0],
                "backtracking": hand[1],
                "subgoal_setting": hand[2],
                "backward_chaining": hand[3],
                "problem": problem,
                "solution": solution,
            }
        rows.append(row)
with open(Path(__file__).with_name("corpus_sample.jsonl"), "w") as f:
    for row in rows:
        f.write(json.dumps(row) + "\n")
print(len(rows))
