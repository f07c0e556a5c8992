#!/usr/bin/env bash
# Runs every test project under tests/ and ends with one line: "N passed, N failed".
# Extra arguments go to each `dotnet test` (e.g. ./test.sh --filter "FullyQualifiedName~Host").
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"

# Debian packages the tests need. Later suites add theirs here, one word each
# (postgresql-15-postgis-3, mosquitto, chromium, fonts-ipafont-gothic).
DEBIAN_PACKAGES=(
  procps    # kill(1): the host tests send SIGTERM to a real machi process (and to mosquitto)
  mosquitto # MQTT notification tests run their own broker (/usr/sbin/mosquitto) on a free loopback port
  postgresql-15-postgis-3 # PostgreSQL storage tests start their own cluster (initdb, pg_ctl) with the PostGIS extension
  chromium             # the portal and snowplow-map browser tests drive /usr/bin/chromium through Playwright (no browser download)
  fonts-ipafont-gothic # Japanese glyphs in the portal's screenshots and layout
)

ensure_packages() {
  local missing=() package
  for package in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$package")
    fi
  done
  ((${#missing[@]} == 0)) && return 0
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  echo "test.sh: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Reads one attribute (passed, failed, error, …) of a trx file's <Counters> element; 0 when absent.
counter() {
  local value
  value=$(grep -o '<Counters [^>]*>' "$2" | head -n 1 | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9]\+' || true)
  echo "${value:-0}"
}

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

ensure_packages "${DEBIAN_PACKAGES[@]}"

results=.artifacts/test-results
rm -rf "$results"
mkdir -p "$results"

echo "test.sh: building Machi.slnx (Release)"
if ! dotnet build Machi.slnx -c Release -nologo -v q -tl:off >"$results/build.log" 2>&1; then
  grep -E ': (error|warning) ' "$results/build.log" | sort -u || cat "$results/build.log"
  echo "test.sh: the build failed, so no tests ran (full log: $results/build.log)"
  echo "0 passed, 1 failed"
  exit 1
fi

passed=0
failed=0
broken=()
mapfile -t projects < <(find tests -name '*.csproj' -not -path '*/bin/*' -not -path '*/obj/*' | sort)
for project in "${projects[@]}"; do
  name=$(basename "$project" .csproj)
  echo "test.sh: testing $name"
  status=0
  dotnet test "$project" -c Release --no-build -nologo \
    --logger "trx;LogFileName=$name.trx" --results-directory "$results" \
    --blame-hang-timeout 15m --blame-hang-dump-type none "$@" || status=$?

  trx="$results/$name.trx"
  if [[ ! -f $trx ]]; then
    broken+=("$name (no results, exit $status)")
    failed=$((failed + 1))
    continue
  fi
  p=$(counter passed "$trx")
  f=$(($(counter failed "$trx") + $(counter error "$trx") + $(counter timeout "$trx") + $(counter aborted "$trx")))
  passed=$((passed + p))
  failed=$((failed + f))
  if ((status != 0 && f == 0)); then
    broken+=("$name (exit $status)")
    failed=$((failed + 1))
  fi
done

if ((${#broken[@]} > 0)); then
  echo "test.sh: test projects that did not run to the end: ${broken[*]}"
fi
echo "$passed passed, $failed failed"
((failed == 0))
