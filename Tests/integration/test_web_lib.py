"""web/js/lib/backoff.js, the reconnect delays of every socket page (/overlay, /mod, the WebRTC viewer and
/publish): exponential with jitter in [ceiling / 2, ceiling), capped, and back to the shortest after reset()."""
from conftest import plugin_config

CEILINGS = [500, 1000, 2000, 4000, 8000, 10000, 10000, 10000]


def waits(driver, engine, options, random_value, count, reset_before=None):
    """`count` delays from a fresh Backoff(options) with Math.random() pinned to `random_value`."""
    driver.get(engine.url + "/favicon.svg")
    answer = driver.execute_async_script("""
        const [options, randomValue, count, resetBefore, done] = arguments;
        import("/js/lib/backoff.js").then(({ Backoff }) => {
            const random = Math.random;
            Math.random = () => randomValue;
            try {
                const backoff = new Backoff(options);
                const list = [];
                for (let i = 0; i < count; i += 1) {
                    if (i === resetBefore) backoff.reset();
                    list.push(backoff.next());
                }
                done({ waits: list, attempt: backoff.attempt });
            } finally {
                Math.random = random;
            }
        }, (err) => done({ error: String(err) }));
    """, options, random_value, count, reset_before)
    assert "error" not in answer, answer
    return answer


def test_backoff_waits_between_half_the_ceiling_and_the_ceiling(engines, driver):
    engine = engines(plugin_config())
    low = waits(driver, engine, {}, 0, len(CEILINGS))
    assert low == {"waits": [c / 2 for c in CEILINGS], "attempt": len(CEILINGS)}
    high = waits(driver, engine, {}, 0.999, len(CEILINGS))["waits"]
    assert all(c / 2 < wait < c for wait, c in zip(high, CEILINGS)), high


def test_backoff_keeps_its_cap_and_attempt_limit_and_starts_over_after_reset(engines, driver):
    engine = engines(plugin_config())
    capped = waits(driver, engine, {"baseMs": 500, "maxMs": 8000, "maxAttempt": 10}, 0, 14)
    assert capped == {"waits": [250, 500, 1000, 2000] + [4000] * 10, "attempt": 10}
    again = waits(driver, engine, {}, 0, 5, reset_before=3)["waits"]
    assert again == [250, 500, 1000, 250, 500]


def test_the_old_mod_paths_are_the_same_modules_as_lib(engines, driver):
    """Plugin modules written against /js/mod/{util,api,notices}.js (the paths docs/plugin-pages.md used to give)
    get the very module instances of /js/lib/, so a notice region or an ApiError class is not doubled."""
    engine = engines(plugin_config())
    driver.get(engine.url + "/favicon.svg")
    same = driver.execute_async_script("""
        const done = arguments[0];
        const names = { util: "h", api: "ApiError", notices: "notify" };
        Promise.all(Object.entries(names).map(([file, name]) =>
            Promise.all([import(`/js/mod/${file}.js`), import(`/js/lib/${file}.js`)])
                .then(([old, lib]) => [file, typeof lib[name] === "function" && old[name] === lib[name]
                                             && Object.keys(old).sort().join() === Object.keys(lib).sort().join()])))
            .then((pairs) => done(Object.fromEntries(pairs)), (err) => done({ error: String(err) }));
    """)
    assert same == {"util": True, "api": True, "notices": True}
