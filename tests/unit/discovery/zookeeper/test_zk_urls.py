"""URL codec: Java URLEncoder compatibility, lenient parsing, Dubbo/SOFARPC renderings."""

from urllib.parse import unquote_plus

import pytest
from hypothesis import given, strategies as st

from discovery.zookeeper.urls import (URLError, decode_name, dubbo_full_string, java_urlencode, ordered_url,
                                      parse_url)


@pytest.mark.parametrize("text, java", [
    # Expected values are what java.net.URLEncoder.encode(text, "UTF-8") returns.
    ("dubbo://10.0.0.5:20880/org.example.DemoService?a=1&b=x,y",
     "dubbo%3A%2F%2F10.0.0.5%3A20880%2Forg.example.DemoService%3Fa%3D1%26b%3Dx%2Cy"),
    ("methods=*", "methods%3D*"),          # Java keeps '*', Python's quote_plus would escape it
    ("a~b", "a%7Eb"),                      # Java escapes '~', Python's quote_plus would keep it
    ("a b", "a+b"),
    ("._-", "._-"),
    ("名", "%E5%90%8D"),
])
def test_java_urlencode_matches_java(text, java):
    assert java_urlencode(text) == java


@given(st.text())
def test_java_urlencode_round_trips_with_unquote_plus(text):
    encoded = java_urlencode(text)
    assert "/" not in encoded and "?" not in encoded and "&" not in encoded
    assert decode_name(encoded) == text == unquote_plus(encoded)


def test_parse_full_dubbo_url():
    url = parse_url("dubbo://10.0.0.5:20880/org.example.DemoService?anyhost=true&group=g1&version=1.0.0")
    assert (url.scheme, url.host, url.port, url.path) == ("dubbo", "10.0.0.5", 20880, "org.example.DemoService")
    assert dict(url.params) == {"anyhost": "true", "group": "g1", "version": "1.0.0"}
    assert url.address() == "10.0.0.5:20880"
    assert url.interface("parent") == "org.example.DemoService"


def test_parse_pathless_url_takes_interface_from_parameter_then_parent():
    url = parse_url("dubbo://192.0.2.2:20880?interface=org.example.DemoService&version=1.0.0")
    assert url.path == "" and url.interface("x") == "org.example.DemoService"
    bare = parse_url("bolt://192.168.1.120?xxx=yyy")
    assert bare.port is None and bare.interface("com.x.Parent") == "com.x.Parent"


def test_parse_without_scheme_ipv6_userinfo_and_bare_keys():
    assert parse_url("10.0.0.1:12200?_WEIGHT=100&p=1").scheme == ""
    v6 = parse_url("dubbo://[::1]:20880/S?x=1")
    assert (v6.host, v6.port, v6.address()) == ("::1", 20880, "[::1]:20880")
    auth = parse_url("dubbo://user:pw@10.0.0.1:20880/S")
    assert (auth.host, auth.port) == ("10.0.0.1", 20880)
    bare = parse_url("dubbo://10.0.0.1:1/S?anyhost&x=&y=a=b&&")
    assert dict(bare.params) == {"anyhost": "anyhost", "x": "", "y": "a=b"}


def test_repeated_key_keeps_the_last_value_and_order_is_kept():
    url = parse_url("bolt://h:1?version=1.0&pid=1&uniqueId=&pid=2")
    assert list(url.params) == ["version", "pid", "uniqueId"] and url.params["pid"] == "2"


@pytest.mark.parametrize("bad, why", [
    ("", "empty"), ("://h:1/x", "missing protocol"), ("dubbo://:20880/x", "no host"),
    ("dubbo://h:0/x", "port"), ("dubbo://h:70000/x", "port"), ("dubbo://h:abc/x", "port"),
    ("dubbo://[::1/x", "IPv6"),
])
def test_parse_rejects_unusable_urls_naming_the_problem(bad, why):
    with pytest.raises(URLError, match=why):
        parse_url(bad)


def test_address_without_port_needs_a_default():
    url = parse_url("bolt://10.0.0.1?x=1")
    assert url.address(12200) == "10.0.0.1:12200"
    with pytest.raises(URLError, match="no port"):
        url.address()


def test_dubbo_full_string_sorts_parameters_and_drops_port_zero():
    assert dubbo_full_string("dubbo", "10.0.0.5", 20880, "S", {"version": "1", "anyhost": "true", "b": "2"}) == \
        "dubbo://10.0.0.5:20880/S?anyhost=true&b=2&version=1"
    assert dubbo_full_string("consumer", "10.0.0.9", None, "S", {"side": "consumer"}) == "consumer://10.0.0.9/S?side=consumer"
    with pytest.raises(ValueError, match="cannot contain '&'"):
        dubbo_full_string("dubbo", "h", 1, "S", {"x": "a&b"})
    with pytest.raises(ValueError, match="parameter name"):
        dubbo_full_string("dubbo", "h", 1, "S", {"x=y": "1"})


def test_ordered_url_keeps_order_and_repeats():
    assert ordered_url("bolt", "10.0.0.1", 12200, [("version", "1.0"), ("pid", "7"), ("pid", "7")]) == \
        "bolt://10.0.0.1:12200?version=1.0&pid=7&pid=7"


@given(st.text(max_size=200))
def test_parse_never_fails_with_anything_but_url_error(text):
    try:
        url = parse_url(text)
    except URLError:
        return
    assert url.host and (url.port is None or 0 < url.port < 65536)
