"""An anonymous shopper fills a cart, then identifies: the run and its timer carry over."""

from engine_core_support import at, event, identify, of_type, rule

from services.trigger_engine.core.effects import Effect
from services.trigger_engine.core.engine import step
from services.trigger_engine.core.inputs import TimerFired
from services.trigger_engine.core.lifecycle import default_lifecycle
from services.trigger_engine.core.merging import merge_states
from services.trigger_engine.core.ruleset import RuleSet
from services.trigger_engine.core.state import CustomerState, encode_state
from shared.envelope import Event

CART = rule(key="cart", exit_when=[{"event": "Order Completed"}], reentry="P1D")
RULES = RuleSet.of([CART])
MODEL = default_lifecycle()


def feed(state: CustomerState, *events: Event) -> tuple[CustomerState, list[Effect]]:
    effects: list[Effect] = []
    for item in events:
        state, produced = step(state, item, rules=RULES, lifecycle=MODEL, now=item.timestamp)
        effects += produced
    return state, effects


def test_anonymous_cart_run_continues_for_the_identified_customer() -> None:
    added = event("Product Added", at(), customer="anon-1", anonymous=True, properties={"sku": "A"})
    anonymous, anon_effects = feed(CustomerState.new("anon-1"), added)
    [timer] = [t for t in of_type(anon_effects, "set_timer") if t.kind == "step"]
    known, _ = feed(CustomerState.new("user-1"), identify(at(minutes=5), email="u@example.com"))

    merged, effects = merge_states(
        known, anonymous, rules=RULES, lifecycle=MODEL, now=at(minutes=6)
    )

    moved = [t for t in of_type(effects, "set_timer") if t.timer_id == timer.timer_id]
    assert [t.customer_key for t in moved] == ["user-1"]
    assert merged.profile.cart.products[0].sku == "A"
    assert merged.stage == "engaged"
    fired = TimerFired(
        timer_id=timer.timer_id, kind="step", run_id=timer.run_id, due_at=timer.due_at
    )
    _, produced = step(merged, fired, rules=RULES, lifecycle=MODEL, now=timer.due_at)
    [action] = of_type(produced, "emit_action")
    assert action.customer.email == "u@example.com"
    assert action.context.cart["products"][0]["sku"] == "A"


def test_a_duplicate_run_of_the_same_rule_is_exited_on_merge() -> None:
    anon_add = event("Product Added", at(), customer="anon-1", anonymous=True)
    anonymous, _ = feed(CustomerState.new("anon-1"), anon_add)
    known, _ = feed(CustomerState.new("user-1"), event("Product Added", at(minutes=1)))

    merged, effects = merge_states(
        known, anonymous, rules=RULES, lifecycle=MODEL, now=at(minutes=2)
    )

    [exited] = of_type(effects, "run_exited")
    assert exited.reason == "merged"
    assert exited.run_id not in merged.runs
    assert exited.run_id not in {t.run_id for t in merged.timers.values()}
    assert [r.rule_key for r in merged.runs.values() if r.status == "active"] == ["cart"]
    assert merged.profile.cart_adds == 2


def test_merge_leaves_both_inputs_untouched() -> None:
    anonymous, _ = feed(
        CustomerState.new("anon-1"), event("Product Added", at(), customer="anon-1", anonymous=True)
    )
    known = CustomerState.new("user-1")
    before = (encode_state(known), encode_state(anonymous))
    merge_states(known, anonymous, rules=RULES, lifecycle=MODEL, now=at(minutes=1))
    assert (encode_state(known), encode_state(anonymous)) == before
