import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError, formatIssues, orderByApp, validateConfig, validateConfigText } from './validate.ts';
import type { ConfigIssue, ConfigResult } from './validate.ts';

const ORIGINAL = '{"Apps":[{"Name":"five-thousand","Ports":[5001,5200],"Targets":["tcp-echo.fly.dev:5001","tcp-echo.fly.dev:5002"]}]}';

/** A valid app to vary one key at a time. */
function app(over: Record<string, unknown> = {}): Record<string, unknown> {
  return { Name: 'a', Ports: [5001], Targets: ['127.0.0.1:9001'], ...over };
}

function issuesOf(result: ConfigResult): ConfigIssue[] {
  assert.equal(result.ok, false, 'expected the config to be rejected');
  return result.ok ? [] : result.issues;
}

function okConfig(result: ConfigResult) {
  if (!result.ok) assert.fail(`expected a valid config, got:\n${formatIssues(result.issues)}`);
  return result.config;
}

describe('validateConfig accepts', () => {
  test('the original format unchanged', () => {
    const config = okConfig(validateConfigText(ORIGINAL));
    assert.deepEqual(config, JSON.parse(ORIGINAL));
  });

  const good: [string, unknown][] = [
    ['no apps at all', { Apps: [] }],
    ['a "$schema" key', { $schema: './config.schema.json', Apps: [app()] }],
    ['every optional key', {
      Apps: [app({
        ConnectTimeoutMs: 1, ConnectAttemptTimeoutMs: 1, IdleTimeoutMs: 0, DrainTimeoutMs: 0, HandshakeTimeoutMs: 1,
        Strategy: 'round-robin', Workers: 64, AcceptProxyProtocol: true, SendProxyProtocol: 'v2',
        OutlierDetection: { ConsecutiveFailures: 1, EjectMs: 1, MaxEjectMs: 1, MaxEjectPercent: 0 }, OnTargetDown: 'close',
      })],
    }],
    ['every strategy', { Apps: ['round-robin', 'least-connections', 'random-two', 'source-hash', 'first'].map((Strategy, i) => app({ Name: `s${i}`, Ports: [i + 1], Strategy })) }],
    ['OutlierDetection false, and an empty object (all defaults)', { Apps: [app({ Name: 'a', OutlierDetection: false }), app({ Name: 'b', Ports: [2], OutlierDetection: {} })] }],
    ['target objects beside strings, in Targets and in Routes', {
      Apps: [app({
        Targets: ['x:1', { Address: 'db2:5432', Weight: 3, Backup: true, MaxConnections: 100 }, { Address: '[::1]:1' }],
        Tls: { Mode: 'passthrough' }, Routes: [{ Sni: ['a.test'], Targets: [{ Address: 'y:1', Weight: 100 }] }],
      })],
    }],
    ['QueueTimeoutMs with MaxConnections on a route\'s target only', {
      Apps: [app({ QueueTimeoutMs: 500, Tls: { Mode: 'passthrough' }, Routes: [{ Sni: ['a.test'], Targets: [{ Address: 'y:1', MaxConnections: 10 }] }] })],
    }],
    ['the same target in two pools', { Apps: [app({ Targets: ['x:1'], Tls: { Mode: 'passthrough' }, Routes: [{ Sni: ['a.test'], Targets: [{ Address: 'x:1', Weight: 2 }] }] })] }],
    ['every protection key', {
      Apps: [app({
        Allow: ['10.0.0.0/8', '::1/128', '192.0.2.7', '2001:db8::/32'], Deny: ['10.1.0.0/16'], MaxConnections: 100, QueueTimeoutMs: 500,
        PerSource: { MaxConnections: 5, RatePerSecond: 2.5, Burst: 10, Prefix6: 56 }, MaxConnectionDurationMs: 60000, FirstByteTimeoutMs: 1000,
      })],
    }],
    ['IPv6, IPv4, names with "_" and a trailing dot as targets', { Apps: [app({ Targets: ['[::1]:9000', '10.0.0.7:5432', 'app_db_1:5432', 'db.internal.:1'] })] }],
    ['a routes-only TLS app with no default targets', {
      Apps: [app({ Targets: undefined, Tls: { Mode: 'passthrough' }, Routes: [{ Sni: ['a.example.test', '*.a.example.test'], Targets: ['x:1'] }] })],
    }],
    ['routes with an empty default pool', { Apps: [app({ Targets: [], Tls: { Mode: 'passthrough' }, Routes: [{ Sni: ['a.test'], Targets: ['x:1'] }] })] }],
    ['one SNI name in two routes with disjoint ALPN (h2 first, then any)', {
      Apps: [app({
        Tls: { Mode: 'passthrough' },
        Routes: [{ Sni: ['a.test'], Alpn: ['h2'], Targets: ['x:1'] }, { Sni: ['A.test'], Targets: ['y:1'] }],
      })],
    }],
    ['terminate with certs', { Apps: [app({ Tls: { Mode: 'terminate', Certs: [{ Cert: 'a.pem', Key: 'a-key.pem' }] } })] }],
    ['Listen with IPv4 and IPv6 addresses', { Apps: [app({ Listen: ['127.0.0.1', '::1', '0.0.0.0'] })] }],
    ['a HealthCheck with only IntervalMs (a TCP connect check)', { Apps: [app({ HealthCheck: { IntervalMs: 2000 } })] }],
    ['a HealthCheck with every key of an HTTP check', {
      Apps: [app({ HealthCheck: { IntervalMs: 2000, TimeoutMs: 2000, Rise: 1, Fall: 3, Port: 8008, HttpPath: '/primary', ExpectStatus: [200, 204] } })],
    }],
    ['a Send/Expect HealthCheck', { Apps: [app({ HealthCheck: { IntervalMs: 500, Send: 'PING\r\n', Expect: 'PONG' } })] }],
    ['an Expect-only HealthCheck (a banner)', { Apps: [app({ HealthCheck: { IntervalMs: 500, Expect: '220 ' } })] }],
    ['two apps on different ports', {
      Apps: [app({ Name: 'a', Ports: [1] }), app({ Name: 'b', Ports: [2] })],
    }],
    ['port 0 (kernel-picked) more than once, in one app and in two', {
      Apps: [app({ Name: 'a', Ports: [0, 0, 5001] }), app({ Name: 'b', Ports: [0] })],
    }],
  ];
  for (const [name, json] of good) {
    test(name, () => {
      // JSON round trip: `undefined` keys disappear, as they would in a file.
      okConfig(validateConfig(JSON.parse(JSON.stringify(json))));
    });
  }
});

describe('validateConfig reports, with the exact path', () => {
  const bad: [string, unknown, string, RegExp][] = [
    ['an unknown key, with "did you mean" (case)', { Apps: [app({ targets: ['x:1'], Targets: undefined })] }, 'Apps[0].targets', /did you mean "Targets"\?/],
    ['an unknown key, with "did you mean" (typo)', { Apps: [app({ ConnectTimeout: 5 })] }, 'Apps[0].ConnectTimeout', /did you mean "ConnectTimeoutMs"\?/],
    ['an unknown key with no close match, listing the known ones', { Apps: [app({ Colour: 'red' })] }, 'Apps[0].Colour', /known keys are Name, Ports, Targets/],
    ['an unknown top-level key', { Apps: [], Appz: [] }, 'Appz', /did you mean "Apps"\?/],
    ['an unknown key in Tls', { Apps: [app({ Tls: { Mode: 'terminate', Certs: [{ Cert: 'c', Key: 'k' }], Cert: 'c' } })] }, 'Apps[0].Tls.Cert', /did you mean "Certs"\?/],
    ['duplicate app names', { Apps: [app({ Name: 'x', Ports: [1] }), app({ Name: 'x', Ports: [2] })] }, 'Apps[1].Name', /"x" is already used by Apps\[0\]/],
    ['a port used by two apps, naming both', { Apps: [app({ Name: 'one', Ports: [80] }), app({ Name: 'two', Ports: [443, 80] })] }, 'Apps[1].Ports[1]', /port 80 of app "two" is already used by app "one" \(Apps\[0\]\.Ports\[0\]\)/],
    ['a port listed twice in one app', { Apps: [app({ Ports: [80, 80] })] }, 'Apps[0].Ports[1]', /port 80 is listed twice/],
    ['a port above 65535', { Apps: [app({ Ports: [5001, 70000] })] }, 'Apps[0].Ports[1]', /^port 70000 is outside 0–65535 \(0: a free port the kernel picks\)$/],
    ['a negative port', { Apps: [app({ Ports: [-1] })] }, 'Apps[0].Ports[0]', /^port -1 is outside 0–65535/],
    ['a port that is a string', { Apps: [app({ Ports: ['80'] })] }, 'Apps[0].Ports[0]', /must be a number, got string "80"/],
    ['a fractional port', { Apps: [app({ Ports: [80.5] })] }, 'Apps[0].Ports[0]', /must be a whole number, got 80\.5/],
    ['no ports', { Apps: [app({ Ports: [] })] }, 'Apps[0].Ports', /must not be empty/],
    ['a target without a port', { Apps: [app({ Targets: ['db.internal'] })] }, 'Apps[0].Targets[0]', /has no port: write it as "db\.internal:PORT"/],
    ['an IPv6 target without brackets', { Apps: [app({ Targets: ['::1:9000'] })] }, 'Apps[0].Targets[0]', /"\[::1\]:9000"/],
    ['a target with a bad host', { Apps: [app({ Targets: ['x:1', 'bad host:80'] })] }, 'Apps[0].Targets[1]', /"bad host" is not a valid host name/],
    ['a bad CIDR in Allow', { Apps: [app({ Allow: ['10.0.0.0/8', '10.0.0.0/33'] })] }, 'Apps[0].Allow[1]', /"10\.0\.0\.0\/33" has a bad prefix length "33": use 0–32/],
    ['a CIDR with host bits in Deny', { Apps: [app({ Deny: ['192.0.2.1/24'] })] }, 'Apps[0].Deny[0]', /bits set past its \/24 prefix: write the range's first address, "192\.0\.2\.0\/24"/],
    ['a host name in Deny', { Apps: [app({ Deny: ['example.com'] })] }, 'Apps[0].Deny[0]', /not an IPv4 or IPv6 address or CIDR range/],
    ['QueueTimeoutMs without MaxConnections', { Apps: [app({ QueueTimeoutMs: 100 })] }, 'Apps[0].QueueTimeoutMs', /needs "MaxConnections"/],
    ['Burst without RatePerSecond', { Apps: [app({ PerSource: { MaxConnections: 3, Burst: 5 } })] }, 'Apps[0].PerSource.Burst', /add "RatePerSecond"/],
    ['an unknown key in PerSource', { Apps: [app({ PerSource: { MaxConnection: 3 } })] }, 'Apps[0].PerSource.MaxConnection', /did you mean "MaxConnections"\?/],
    ['FirstByteTimeoutMs on a TLS app', { Apps: [app({ Tls: { Mode: 'passthrough' }, FirstByteTimeoutMs: 100 })] }, 'Apps[0].FirstByteTimeoutMs', /plain TCP apps only/],
    ['a target port out of range', { Apps: [app({ Targets: ['db:99999'] })] }, 'Apps[0].Targets[0]', /port 99999 is outside 1–65535/],
    ['an app with no targets and no routes', { Apps: [app({ Targets: undefined })] }, 'Apps[0].Targets', /is required/],
    ['an app with an empty target list and no routes', { Apps: [app({ Targets: [] })] }, 'Apps[0].Targets', /is empty/],
    ['Routes without Tls', { Apps: [app({ Routes: [{ Sni: ['a.test'], Targets: ['x:1'] }] })] }, 'Apps[0].Routes', /need Tls/],
    ['one SNI name in two routes (case-insensitive)', {
      Apps: [app({ Tls: { Mode: 'passthrough' }, Routes: [{ Sni: ['a.test', 'A.Example.Test'], Targets: ['x:1'] }, { Sni: ['b.test', 'a.example.test'], Targets: ['y:1'] }] })],
    }, 'Apps[0].Routes[1].Sni[1]', /"a\.example\.test" is already routed by Routes\[0\]\.Sni\[1\]/],
    ['one SNI name in two routes with overlapping ALPN', {
      Apps: [app({ Tls: { Mode: 'passthrough' }, Routes: [{ Sni: ['a.test'], Alpn: ['h2', 'http/1.1'], Targets: ['x:1'] }, { Sni: ['a.test'], Alpn: ['h2'], Targets: ['y:1'] }] })],
    }, 'Apps[0].Routes[1].Sni[0]', /already routed/],
    ['a wildcard that is not the leading label', { Apps: [app({ Tls: { Mode: 'passthrough' }, Routes: [{ Sni: ['a.*.test'], Targets: ['x:1'] }] })] }, 'Apps[0].Routes[0].Sni[0]', /wildcard may only be the whole first label/],
    ['a partial wildcard label', { Apps: [app({ Tls: { Mode: 'passthrough' }, Routes: [{ Sni: ['*a.test'], Targets: ['x:1'] }] })] }, 'Apps[0].Routes[0].Sni[0]', /wildcard may only be the whole first label/],
    ['Certs on passthrough (and only that, not also "must not be empty")', { Apps: [app({ Tls: { Mode: 'passthrough', Certs: [] } })] }, 'Apps[0].Tls.Certs', /only used with Mode "terminate"/],
    ['terminate without Certs', { Apps: [app({ Tls: { Mode: 'terminate' } })] }, 'Apps[0].Tls.Certs', /is required with Mode "terminate"/],
    ['an unknown Tls mode', { Apps: [app({ Tls: { Mode: 'tcp' } })] }, 'Apps[0].Tls.Mode', /must be "passthrough" or "terminate", got string "tcp"/],
    ['an unknown strategy', { Apps: [app({ Strategy: 'random' })] }, 'Apps[0].Strategy', /must be "round-robin" or "least-connections" or "random-two" or "source-hash" or "first", got string "random"/],
    ['a bad target inside a target object', { Apps: [app({ Targets: [{ Address: 'db.internal' }] })] }, 'Apps[0].Targets[0].Address', /has no port: write it as "db\.internal:PORT"/],
    ['a target object without Address', { Apps: [app({ Targets: [{ Weight: 2 }] })] }, 'Apps[0].Targets[0]', /has no "Address"/],
    ['a target that is neither string nor object', { Apps: [app({ Targets: [9000] })] }, 'Apps[0].Targets[0]', /must be "host:port" or an object such as/],
    ['a misspelt target key, with "did you mean"', { Apps: [app({ Targets: [{ Address: 'x:1', Wieght: 2 }] })] }, 'Apps[0].Targets[0].Wieght', /did you mean "Weight"\?/],
    ['a zero weight', { Apps: [app({ Targets: [{ Address: 'x:1', Weight: 0 }] })] }, 'Apps[0].Targets[0].Weight', /must be at least 1, got 0/],
    ['a zero target MaxConnections', { Apps: [app({ Targets: [{ Address: 'x:1', MaxConnections: 0 }] })] }, 'Apps[0].Targets[0].MaxConnections', /must be at least 1, got 0/],
    ['one target with two MaxConnections in two pools', { Apps: [app({ Targets: [{ Address: 'x:1', MaxConnections: 5 }], Tls: { Mode: 'passthrough' }, Routes: [{ Sni: ['a.test'], Targets: ['x:1'] }] })] }, 'Apps[0].Routes[0].Targets[0]', /has no MaxConnections here but MaxConnections 5 in Apps\[0\]\.Targets\[0\]/],
    ['a target listed twice in one pool (string and object)', { Apps: [app({ Targets: ['x:1', 'y:1', { Address: 'x:1', Backup: true }] })] }, 'Apps[0].Targets[2]', /"x:1" is listed twice in this pool \(also Targets\[0\]\): remove one, or give it a "Weight"/],
    ['a target listed twice in a route', { Apps: [app({ Tls: { Mode: 'passthrough' }, Routes: [{ Sni: ['a.test'], Targets: ['y:1', 'y:1'] }] })] }, 'Apps[0].Routes[0].Targets[1]', /listed twice/],
    ['OutlierDetection true', { Apps: [app({ OutlierDetection: true })] }, 'Apps[0].OutlierDetection', /must be false \(off\) or an object/],
    ['a misspelt OutlierDetection key', { Apps: [app({ OutlierDetection: { EjectMS: 5 } })] }, 'Apps[0].OutlierDetection.EjectMS', /did you mean "EjectMs"\? \(keys are case-sensitive\)/],
    ['MaxEjectMs below EjectMs', { Apps: [app({ OutlierDetection: { EjectMs: 5000, MaxEjectMs: 1000 } })] }, 'Apps[0].OutlierDetection.MaxEjectMs', /less than EjectMs/],
    ['MaxEjectPercent over 100', { Apps: [app({ OutlierDetection: { MaxEjectPercent: 101 } })] }, 'Apps[0].OutlierDetection.MaxEjectPercent', /at most 100/],
    ['an unknown OnTargetDown', { Apps: [app({ OnTargetDown: 'reset' })] }, 'Apps[0].OnTargetDown', /must be "keep" or "close"/],
    ['an unknown PROXY protocol version', { Apps: [app({ SendProxyProtocol: 'v3' })] }, 'Apps[0].SendProxyProtocol', /must be "v1" or "v2"/],
    ['a Listen entry that is a name, not an address', { Apps: [app({ Listen: ['127.0.0.1', 'localhost'] })] }, 'Apps[0].Listen[1]', /listen address "localhost" is not an IP address: write one this machine has, as "127\.0\.0\.1" or "::1"/],
    ['a Listen entry with a port', { Apps: [app({ Listen: ['127.0.0.1:5001'] })] }, 'Apps[0].Listen[0]', /has a port: Listen takes addresses only/],
    ['a bracketed IPv6 Listen entry', { Apps: [app({ Listen: ['[::1]'] })] }, 'Apps[0].Listen[0]', /without brackets, as "::1"/],
    ['an empty Listen', { Apps: [app({ Listen: [] })] }, 'Apps[0].Listen', /remove Listen to listen on every interface/],
    ['zero workers', { Apps: [app({ Workers: 0 })] }, 'Apps[0].Workers', /must be at least 1, got 0/],
    ['too many workers', { Apps: [app({ Workers: 65 })] }, 'Apps[0].Workers', /must be at most 64, got 65/],
    ['a zero connect timeout', { Apps: [app({ ConnectTimeoutMs: 0 })] }, 'Apps[0].ConnectTimeoutMs', /must be at least 1, got 0/],
    ['a negative idle timeout', { Apps: [app({ IdleTimeoutMs: -1 })] }, 'Apps[0].IdleTimeoutMs', /must be at least 0, got -1/],
    ['a timeout longer than a Node timer can wait', { Apps: [app({ IdleTimeoutMs: 2 ** 31 })] }, 'Apps[0].IdleTimeoutMs', /longest timer/],
    ['a HealthCheck without IntervalMs', { Apps: [app({ HealthCheck: { TimeoutMs: 100 } })] }, 'Apps[0].HealthCheck.IntervalMs', /is required/],
    ['a HealthCheck IntervalMs under 100', { Apps: [app({ HealthCheck: { IntervalMs: 10 } })] }, 'Apps[0].HealthCheck.IntervalMs', /at least 100 ms/],
    ['a HealthCheck timeout longer than its interval', { Apps: [app({ HealthCheck: { IntervalMs: 1000, TimeoutMs: 1500 } })] }, 'Apps[0].HealthCheck.TimeoutMs', /1500 is more than IntervalMs \(1000\)/],
    ['HttpPath with Send', { Apps: [app({ HealthCheck: { IntervalMs: 1000, HttpPath: '/', Send: 'x' } })] }, 'Apps[0].HealthCheck.Send', /cannot be used with HttpPath/],
    ['HttpPath with Expect', { Apps: [app({ HealthCheck: { IntervalMs: 1000, HttpPath: '/', Expect: 'x' } })] }, 'Apps[0].HealthCheck.Expect', /cannot be used with HttpPath/],
    ['ExpectStatus without HttpPath', { Apps: [app({ HealthCheck: { IntervalMs: 1000, ExpectStatus: [200] } })] }, 'Apps[0].HealthCheck.ExpectStatus', /only used by HTTP checks: add "HttpPath"/],
    ['an HttpPath without a leading slash', { Apps: [app({ HealthCheck: { IntervalMs: 1000, HttpPath: 'primary' } })] }, 'Apps[0].HealthCheck.HttpPath', /must start with "\/"/],
    ['an HttpPath with a space', { Apps: [app({ HealthCheck: { IntervalMs: 1000, HttpPath: '/a b' } })] }, 'Apps[0].HealthCheck.HttpPath', /no spaces or control characters/],
    ['a HealthCheck status out of range', { Apps: [app({ HealthCheck: { IntervalMs: 1000, HttpPath: '/', ExpectStatus: [99] } })] }, 'Apps[0].HealthCheck.ExpectStatus[0]', /at least 100/],
    ['a HealthCheck Port out of range', { Apps: [app({ HealthCheck: { IntervalMs: 1000, Port: 0 } })] }, 'Apps[0].HealthCheck.Port', /port 0 is outside 1–65535/],
    ['zero Rise', { Apps: [app({ HealthCheck: { IntervalMs: 1000, Rise: 0 } })] }, 'Apps[0].HealthCheck.Rise', /at least 1, got 0/],
    ['an unknown HealthCheck key', { Apps: [app({ HealthCheck: { IntervalMs: 1000, Intervalms: 5 } })] }, 'Apps[0].HealthCheck.Intervalms', /did you mean "IntervalMs"\?/],
    ['a bad app name', { Apps: [app({ Name: 'five thousand' })] }, 'Apps[0].Name', /may only contain letters, digits/],
    ['an app name over 64 characters', { Apps: [app({ Name: 'x'.repeat(65) })] }, 'Apps[0].Name', /at most 64 characters/],
    ['an app that is not an object', { Apps: [app(), 7] }, 'Apps[1]', /must be a JSON object, got 7/],
    ['a config that is not an object', [], '', /must be a JSON object such as \{"Apps": \[\]\}, got an array/],
    ['a missing Apps', {}, 'Apps', /is required/],
  ];
  for (const [name, json, path, message] of bad) {
    test(name, () => {
      const issues = issuesOf(validateConfig(JSON.parse(JSON.stringify(json))));
      assert.equal(issues.length, 1, `expected exactly one issue, got:\n${formatIssues(issues)}`);
      assert.equal(issues[0]?.path, path);
      assert.match(issues[0]?.message ?? '', message);
    });
  }
});

describe('validateConfig', () => {
  test('reports every problem at once: five mistakes, five issues, grouped by app', () => {
    const issues = issuesOf(validateConfig({
      Apps: [
        { Name: 'a', Port: [80], Targets: ['x:1'] },                  // 1. unknown key (did you mean Ports)
        { Name: 'b', Ports: [70000], Targets: ['x:1'] },              // 2. port out of range
        { Name: 'c', Ports: [81], Targets: ['no-port'] },             // 3. bad target
        { Name: 'c', Ports: [82], Targets: ['x:1'] },                 // 4. duplicate name
        { Name: 'e', Ports: [81], Targets: ['x:1'] },                 // 5. port 81 already used by "c"
      ],
    }));
    assert.deepEqual(issues.map((i) => i.path), [
      'Apps[0].Port',
      'Apps[1].Ports[0]',
      'Apps[2].Targets[0]',
      'Apps[3].Name',
      'Apps[4].Ports[0]',
    ]);
  });

  test('a mistyped required key is one issue, not also "is required"', () => {
    const issues = issuesOf(validateConfig({ Apps: [{ Name: 'a', Ports: [1], targets: ['x:1'] }] }));
    assert.deepEqual(issues, [{ path: 'Apps[0].targets', message: 'unknown key "targets": did you mean "Targets"? (keys are case-sensitive)' }]);
  });

  test('a successful result is frozen all the way down', () => {
    const config = okConfig(validateConfig({ Apps: [app({ Tls: { Mode: 'passthrough' }, Routes: [{ Sni: ['a.test'], Targets: ['x:1'] }] })] }));
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.Apps));
    assert.ok(Object.isFrozen(config.Apps[0]));
    assert.ok(Object.isFrozen(config.Apps[0]?.Ports));
    assert.ok(Object.isFrozen(config.Apps[0]?.Routes?.[0]?.Sni));
    assert.throws(() => {
      (config.Apps[0]?.Ports as number[]).push(2);
    }, TypeError);
  });

  test('does not freeze or change the input', () => {
    const input = { Apps: [app()] };
    okConfig(validateConfig(input));
    assert.ok(!Object.isFrozen(input.Apps[0]));
  });
});

describe('validateConfigText', () => {
  const json: [string, string, number, number, RegExp][] = [
    ['a trailing comma', '{\n  "Apps": [\n    {"Name": "a",},\n  ]\n}', 3, 18, /trailing comma/],
    ['a comment', '{\n  "Apps": [] // none yet\n}', 2, 14, /no comments/],
    ['a truncated file', '{"Apps": [', 1, 11, /unexpected end of the file/],
    ['a misspelt literal (V8 gives no position)', '{"Apps": [],\n "X": tru}', 2, 10, /unexpected token '\}'/],
    ['a single-quoted string', "{'Apps': []}", 1, 2, /property name/],
  ];
  for (const [name, text, line, column, message] of json) {
    test(`invalid JSON: ${name} → line ${line}, column ${column}`, () => {
      const issues = issuesOf(validateConfigText(text));
      assert.equal(issues.length, 1);
      assert.equal(issues[0]?.path, '');
      assert.equal(issues[0]?.line, line);
      assert.equal(issues[0]?.column, column);
      assert.match(issues[0]?.message ?? '', new RegExp(`^invalid JSON at line ${line}, column ${column}: `));
      assert.match(issues[0]?.message ?? '', message);
    });
  }

  test('an empty file says so', () => {
    assert.match(issuesOf(validateConfigText(' \n'))[0]?.message ?? '', /the config is empty/);
  });

  test('a byte-order mark is ignored', () => {
    okConfig(validateConfigText(`\uFEFF${ORIGINAL}`));
  });
});

describe('formatIssues', () => {
  const issues = [
    { path: 'Apps[0].Ports[1]', message: 'port 70000 is outside 0–65535 (0: a free port the kernel picks)' },
    { path: '', message: 'invalid JSON at line 1, column 2: x', line: 1, column: 2 },
  ];

  test('one issue per line, indented, path first', () => {
    assert.equal(formatIssues(issues), '  Apps[0].Ports[1]: port 70000 is outside 0–65535 (0: a free port the kernel picks)\n  invalid JSON at line 1, column 2: x');
  });

  test('with a source, under a heading that counts the problems', () => {
    assert.equal(formatIssues(issues.slice(0, 1), 'config.json'), 'Invalid config config.json (1 problem):\n  Apps[0].Ports[1]: port 70000 is outside 0–65535 (0: a free port the kernel picks)');
  });
});

describe('ConfigError', () => {
  test('carries its code, issues and path; the message is the heading', () => {
    const issues = [{ path: 'Apps', message: 'is required' }, { path: 'X', message: 'unknown key' }];
    const err = new ConfigError('ERR_CONFIG_INVALID', issues, { path: '/etc/fproxy/config.json' });
    assert.ok(err instanceof Error);
    assert.equal(err.name, 'ConfigError');
    assert.equal(err.code, 'ERR_CONFIG_INVALID');
    assert.equal(err.path, '/etc/fproxy/config.json');
    assert.deepEqual(err.issues, issues);
    assert.equal(err.message, 'Invalid config /etc/fproxy/config.json (2 problems)');
  });
});

test('orderByApp keeps file-level issues first and each app\'s issues together, in order', () => {
  const order = orderByApp([
    { path: 'Apps[1].Name', message: '1' },
    { path: 'Apps[0].Ports[0]', message: '2' },
    { path: 'Apps[10].Tls', message: '3' },
    { path: 'Extra', message: '4' },
    { path: 'Apps[1].Ports', message: '5' },
  ]);
  assert.deepEqual(order.map((i) => i.message), ['4', '2', '1', '5', '3']);
});
