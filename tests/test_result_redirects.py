"""protocol.ResultRedirects: a result download's hops, each through the result-host check, without I/O."""

from __future__ import annotations

import pytest

from airflow_provider_akool.exceptions import AkoolResponseError, AkoolResultHostError
from airflow_provider_akool.protocol import ResultRedirects
from airflow_provider_akool.result_hosts import MAX_REDIRECTS

PUBLIC = ["93.184.216.34"]
METADATA = "169.254.169.254"


def follow(hops: ResultRedirects, replies: list[tuple[int, dict[str, str]]]) -> list[str]:
    """Drive ``hops`` as a transport does, every host public; return the URLs it would request."""
    requested = []
    for status, headers in replies:
        requested.append(hops.check(PUBLIC))
        if not hops.redirected(status, headers):
            break
    return requested


def test_a_reply_that_is_the_file_ends_the_download_on_the_first_url() -> None:
    hops = ResultRedirects("https://cdn.example/r.png", own_host_private=False)

    assert follow(hops, [(200, {"location": "https://elsewhere.example/"})]) == ["https://cdn.example/r.png"]
    assert hops.redirects == 0


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_each_redirect_status_is_followed_to_its_location(status: int) -> None:
    hops = ResultRedirects("https://cdn.example/r.png", own_host_private=False)

    requested = follow(hops, [(status, {"location": "https://files.example/r.png"}), (200, {})])

    assert requested == ["https://cdn.example/r.png", "https://files.example/r.png"]
    assert hops.redirects == 1


def test_a_redirect_without_location_is_the_reply_itself() -> None:
    hops = ResultRedirects("https://cdn.example/r.png", own_host_private=False)

    assert follow(hops, [(302, {})]) == ["https://cdn.example/r.png"]
    assert hops.redirects == 0


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/v2/r.png", "https://cdn.example/v2/r.png"),
        ("other.png", "https://cdn.example/results/other.png"),
        ("../old/r.png", "https://cdn.example/old/r.png"),
        ("//files.example/r.png", "https://files.example/r.png"),
    ],
    ids=["absolute_path", "relative_name", "parent", "scheme_relative"],
)
def test_a_relative_location_is_taken_relative_to_the_url_that_sent_it(location: str, expected: str) -> None:
    hops = ResultRedirects("https://cdn.example/results/r.png?sig=1", own_host_private=False)

    requested = follow(hops, [(302, {"location": location}), (200, {})])

    assert requested == ["https://cdn.example/results/r.png?sig=1", expected]


def test_a_relative_location_after_a_hop_is_taken_relative_to_that_hop() -> None:
    hops = ResultRedirects("https://cdn.example/a/r.png", own_host_private=False)

    requested = follow(
        hops,
        [(302, {"location": "https://files.example/x/y.png"}), (307, {"location": "z.png"}), (200, {})],
    )

    assert requested[-1] == "https://files.example/x/z.png"
    assert hops.redirects == 2


def test_the_download_follows_max_redirects_and_fails_on_one_more() -> None:
    hops = ResultRedirects("https://cdn.example/0", own_host_private=False)
    replies = [(302, {"location": f"https://cdn.example/{n + 1}"}) for n in range(MAX_REDIRECTS + 1)]

    requested = follow(hops, replies[:MAX_REDIRECTS])
    assert len(requested) == MAX_REDIRECTS
    # The last redirect allowed is followed: its target is requested...
    assert hops.check(PUBLIC) == f"https://cdn.example/{MAX_REDIRECTS}"
    assert hops.redirected(*replies[MAX_REDIRECTS])
    # ... and the one past it is not, neither checked nor requested.
    with pytest.raises(AkoolResponseError, match=f"redirected more than {MAX_REDIRECTS} times"):
        hops.next_url()
    with pytest.raises(AkoolResponseError, match=f"redirected more than {MAX_REDIRECTS} times"):
        hops.check(PUBLIC)
    assert hops.redirects == MAX_REDIRECTS + 1


def test_a_smaller_limit_is_kept() -> None:
    hops = ResultRedirects("https://cdn.example/0", own_host_private=False, max_redirects=0)

    assert hops.check(PUBLIC) == "https://cdn.example/0"
    assert hops.redirected(302, {"location": "/1"})
    with pytest.raises(AkoolResponseError, match="more than 0 times"):
        hops.check(PUBLIC)


def test_a_hop_to_a_refused_host_is_refused_before_it_is_requested() -> None:
    hops = ResultRedirects("https://cdn.example/r.png", own_host_private=False)
    assert hops.check(PUBLIC) == "https://cdn.example/r.png"
    assert hops.redirected(302, {"location": f"http://{METADATA}/latest/meta-data/"})

    redirected = r"from 169\.254\.169\.254 \(where cdn\.example redirected the download\)"
    with pytest.raises(AkoolResultHostError, match=redirected):
        hops.check([METADATA])
    # Refused: the transport may not request it.
    with pytest.raises(RuntimeError, match=r"did not pass ResultRedirects\.check"):
        hops.redirected(200, {})


def test_a_name_that_resolves_to_a_private_address_is_refused_on_a_hop() -> None:
    hops = ResultRedirects("https://cdn.example/r.png", own_host_private=False)
    hops.check(PUBLIC)
    hops.redirected(301, {"location": "https://internal.example/r.png"})

    with pytest.raises(AkoolResultHostError, match=r"internal\.example resolves to 10\.0\.0\.5, a private"):
        hops.check(["10.0.0.5"])


def test_the_first_url_is_checked_too() -> None:
    hops = ResultRedirects(f"http://{METADATA}/r.png", own_host_private=False)

    with pytest.raises(
        AkoolResultHostError, match=r"from 169\.254\.169\.254: 169\.254\.169\.254 is a link-local"
    ):
        hops.check([METADATA])


def test_a_connection_on_a_private_host_may_download_from_private_hosts() -> None:
    hops = ResultRedirects("http://127.0.0.1:8765/media/r.png", own_host_private=True)

    assert hops.check(["127.0.0.1"]) == "http://127.0.0.1:8765/media/r.png"
    assert hops.redirected(302, {"location": f"http://{METADATA}/r.png"})
    assert hops.check([METADATA]) == f"http://{METADATA}/r.png"


def test_a_reply_is_taken_only_for_a_checked_url() -> None:
    hops = ResultRedirects("https://cdn.example/r.png", own_host_private=False)

    with pytest.raises(RuntimeError, match=r"did not pass ResultRedirects\.check"):
        hops.redirected(302, {"location": "/other"})
    hops.check(PUBLIC)
    assert not hops.redirected(200, {})
    with pytest.raises(RuntimeError):  # one reply per check
        hops.redirected(200, {})
