# The made-up history of snapshots spanning months that the prune tests give a store (sourced
# after lib.sh by prune.sh for file:// and s3_prune.sh for s3://), and the checks of what prune
# says and leaves. The store is reached through three functions the test defines, on keys
# relative to the database's directory in the store ("<id>/<object>"):
#   history_get KEY        prints the object
#   history_put KEY        stores stdin as the object
#   history_copy FROM TO   copies an object
#   history_sync           makes what was put and copied visible to deployctl (a no-op where
#                          the three work on the store itself)
# and `common` (the --database/--store arguments) and `src` (the database), set before
# prune_backups and prune_history are called.

# Two real backups of $src tagged nightly: r1, then r2.
prune_backups() {
    local id
    for id in r1 r2; do
        run_deployctl backup "${common[@]}" --tag nightly --quiet
        [[ $rc -eq 0 ]] || fail "backup failed: $(cat "$WORK/err")"
        printf -v "$id" '%s' "$(tail -n 1 "$WORK/out")"
    done
    # Ids carry the time to the second; within one second a later backup takes a larger suffix,
    # so the newest is the one that sorts last even when both fell into the same second.
    [[ $r2 > $r1 ]] || fail "the second backup's id $r2 sorts before the first's, $r1"
}

# A copy of the real snapshot $r1 under another id and time (and tag), as if taken then.
fabricate() { # id tag
    local id=$1 tag=$2 stamp
    stamp=$(sed -E 's/^(....)(..)(..)T(..)(..)(..)Z-.*/\1-\2-\3T\4:\5:\6Z/' <<<"$id")
    history_copy "$r1/snapshot.tar" "$id/snapshot.tar"
    history_get "$r1/manifest.json" |
        jq --arg id "$id" --arg at "$stamp" --arg tag "$tag" '.id = $id | .created_at = $at | .tag = $tag' |
        history_put "$id/manifest.json"
}

# An incomplete snapshot: an archive and no manifest.
incomplete() { # id
    history_copy "$r1/snapshot.tar" "$1/snapshot.tar"
}

sorted() { tr ' ' '\n' <<<"$*" | sort | tr '\n' ' ' | sed 's/ $//'; }

# Fabricates the history, verifies $f6 and pins $f3; sets the ids and what a prune with
# --keep-daily 1 --keep-monthly 3 (and a 24 h grace) keeps and deletes: expected_kept,
# expected_gone, all. i_held, the old incomplete snapshot whose writer is alive, is the
# caller's to make alive (each store has its own notion of a live writer).
prune_history() {
    f1=20250105T020000Z-f001 # Sun, ISO 2025-W01, January
    f2=20250301T020000Z-f002 # Sat 2025-W09, March
    f3=20250302T020000Z-f003 # Sun 2025-W09: pinned
    f4=20250303T020000Z-f004 # Mon 2025-W10
    f5=20250303T120000Z-f005 # Mon 2025-W10, the same day
    f6=20250401T020000Z-f006 # Tue 2025-W14, April: verified, the newest verified
    f7=20250415T020000Z-f007 # Tue 2025-W16, April's newest
    f8=20250501T020000Z-f008 # Thu 2025-W18, May
    f9=20250502T020000Z-f009 # Fri 2025-W18, May's newest
    p1=20250420T020000Z-f00a # an old pre-restore snapshot
    local id
    for id in $f1 $f2 $f3 $f4 $f5 $f6 $f7 $f8 $f9; do fabricate "$id" nightly; done
    fabricate "$p1" pre-restore

    # The pin a `release` writes (see "pins" in include/deployctl/snapshot.h), by hand.
    echo '{"owner":"release-test","note":"pinned by hand"}' | history_put "$f3/pin-release-test"

    i_old=20250210T020000Z-f0b1                         # writer long gone: deleted
    i_fresh=$(date -u -d '-1 hour' +%Y%m%dT%H%M%SZ)-f0b2 # within the grace: kept
    i_held=20250211T020000Z-f0b3                        # old, but its writer is alive
    for id in $i_old $i_fresh $i_held; do incomplete "$id"; done
    history_sync

    run_deployctl show "$f6" "${common[@]}" --json
    [[ $rc -eq 0 ]] || fail "a fabricated snapshot is not readable: $(cat "$WORK/err")"
    run_deployctl verify "$f6" "${common[@]}"
    [[ $rc -eq 0 ]] || fail "verify of the fabricated $f6 failed: $(cat "$WORK/err")"

    all=$(sorted "$r1 $r2 $f1 $f2 $f3 $f4 $f5 $f6 $f7 $f8 $f9 $p1 $i_old $i_fresh $i_held")
    # --keep-daily 1 --keep-monthly 3: the newest of today ($r2), the newest of the three newest
    # months ($r2, $f9 for May, $f7 for April); plus the newest verified ($f6), the pinned ($f3),
    # the fresh incomplete one and the one whose writer is alive.
    expected_kept=$(sorted "$r2 $f9 $f7 $f6 $f3 $i_fresh $i_held")
    expected_gone=$(sorted "$r1 $f1 $f2 $f4 $f5 $f8 $p1 $i_old")
}

# --dry-run, as a table and as JSON: every snapshot with its action and why; the caller checks
# that the store did not change.
prune_check_dry_run() {
    run_deployctl prune "${common[@]}" --keep-daily 1 --keep-monthly 3 --dry-run
    [[ $rc -eq 0 ]] || fail "dry run failed: $(cat "$WORK/err")"
    grep -E "^would-delete .* $r1 .*no retention rule keeps it" "$WORK/out" >/dev/null ||
        fail "dry run does not say why $r1 would go: $(cat "$WORK/out")"
    grep -E "^would-delete .* $i_old .*older than the grace period" "$WORK/out" >/dev/null ||
        fail "dry run does not say why the old incomplete one would go"
    grep -E "^keep .* $f3 .*pinned \(pin-release-test\)" "$WORK/out" >/dev/null || fail "dry run does not show the pin"
    grep -E "^keep .* $f6 .*newest-verified" "$WORK/out" >/dev/null || fail "dry run does not keep the newest verified"
    grep -E "^keep .* $r2 .*keep-daily, keep-monthly, newest" "$WORK/out" >/dev/null || fail "reasons of $r2: $(grep "$r2" "$WORK/out")"
    grep -q "nothing was changed" "$WORK/err" || fail "dry run summary missing: $(cat "$WORK/err")"

    run_deployctl prune "${common[@]}" --keep-daily 1 --keep-monthly 3 --dry-run --json
    [[ $rc -eq 0 ]] || fail "dry run --json failed: $(cat "$WORK/err")"
    assert_eq "$all" "$(jq -r '[.[].id] | sort | join(" ")' "$WORK/out")" "every snapshot in the JSON"
    assert_eq "$expected_kept" "$(jq -r '[.[] | select(.action == "keep") | .id] | sort | join(" ")' "$WORK/out")" "kept (dry run, JSON)"
    assert_eq "$expected_gone" "$(jq -r '[.[] | select(.action == "delete") | .id] | sort | join(" ")' "$WORK/out")" "deleted (dry run, JSON)"
    assert_eq '["keep-monthly"]' "$(jq -c ".[] | select(.id == \"$f7\") | .reasons" "$WORK/out")" "reasons of $f7"
    assert_eq '["in-progress"]' "$(jq -c ".[] | select(.id == \"$i_held\") | .reasons" "$WORK/out")" "reasons of the held one"
    assert_eq '["incomplete-grace"]' "$(jq -c ".[] | select(.id == \"$i_fresh\") | .reasons" "$WORK/out")" "reasons of the fresh one"
    assert_eq '["expired"]' "$(jq -c ".[] | select(.id == \"$p1\") | .reasons" "$WORK/out")" "the old pre-restore one"
    assert_eq "pre-restore|$src" "$(jq -r ".[] | select(.id == \"$p1\") | .tag + \"|\" + .database" "$WORK/out")" "tag and database"
    assert_eq "2025-05-02T02:00:00Z" "$(jq -r ".[] | select(.id == \"$f9\") | .created_at" "$WORK/out")" "created_at"
    assert_eq 0 "$(jq '[.[] | select(.deleted)] | length' "$WORK/out")" "nothing deleted in a dry run"
}

# The real prune, its policy from a config file: exactly expected_gone deleted, expected_kept
# listed by `snapshots` afterwards.
prune_check_prune() {
    cat >"$WORK/deployctl.conf" <<'EOF'
[retention]
keep_daily = 1
keep_monthly = 3
incomplete_grace = 24h
EOF
    run_deployctl prune "${common[@]}" --config "$WORK/deployctl.conf" --json
    [[ $rc -eq 0 ]] || fail "prune failed: $(cat "$WORK/err")"
    assert_eq "$expected_gone" "$(jq -r '[.[] | select(.deleted) | .id] | sort | join(" ")' "$WORK/out")" "deleted"
    grep -q "pruned: 8 snapshots deleted" "$WORK/err" || fail "summary: $(cat "$WORK/err")"
    grep -q "deleted snapshot $r1 of $src (no retention rule keeps it)" "$WORK/err" || fail "no log line for $r1"
    cp "$WORK/err" "$WORK/prune.err"
    run_deployctl snapshots "${common[@]}" --all --json
    [[ $rc -eq 0 ]] || fail "snapshots failed: $(cat "$WORK/err")"
    assert_eq "$expected_kept" "$(jq -r '[.[].id] | sort | join(" ")' "$WORK/out")" "snapshots left after prune"
}
