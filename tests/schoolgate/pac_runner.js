// Evaluates a PAC file the way a browser's PAC sandbox does, with the standard helper functions,
// for a list of {url, host} cases read as JSON from stdin; prints the answers as JSON.
// Name resolution is not available: a PAC that tries to resolve a host name fails the test.
"use strict";
const fs = require("fs");
const vm = require("vm");

function ipToInt(ip) {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) throw new Error("isInNet called with a host name (would need DNS): " + ip);
  return m.slice(1).reduce((acc, part) => {
    const n = Number(part);
    if (n > 255) throw new Error("bad IPv4 literal: " + ip);
    return acc * 256 + n;
  }, 0);
}

const sandbox = {
  isPlainHostName: (host) => host.indexOf(".") < 0,
  dnsDomainIs: (host, domain) => host.length >= domain.length &&
    host.substring(host.length - domain.length) === domain,
  localHostOrDomainIs: (host, hostdom) => host === hostdom ||
    (host.indexOf(".") < 0 && hostdom.lastIndexOf(host + ".", 0) === 0),
  shExpMatch: (str, pattern) => new RegExp("^" + pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*").replace(/\?/g, ".") + "$").test(str),
  isInNet: (host, pattern, mask) =>
    ((ipToInt(host) & ipToInt(mask)) >>> 0) === ((ipToInt(pattern) & ipToInt(mask)) >>> 0),
  myIpAddress: () => "10.20.30.40",
  dnsResolve: (host) => { throw new Error("dnsResolve called (would need DNS): " + host); },
  isResolvable: (host) => { throw new Error("isResolvable called (would need DNS): " + host); },
  dnsDomainLevels: (host) => host.split(".").length - 1,
};
vm.createContext(sandbox);
vm.runInContext(fs.readFileSync(process.argv[2], "utf8"), sandbox, { filename: "proxy.pac" });
const cases = JSON.parse(fs.readFileSync(0, "utf8"));
const answers = cases.map(([url, host]) => {
  try {
    return sandbox.FindProxyForURL(url, host);
  } catch (e) {
    return "ERROR " + e.message;
  }
});
process.stdout.write(JSON.stringify(answers));
