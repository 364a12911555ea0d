#!/bin/bash
cd /tmp/mut/repo/deploy
for m in 1-scaling-removed 2-deletion-protection-off 3-extra-invoke-permission 4-key-any-principal-decrypt 5-queue-anyone-receive-delete 6-breaker-off-stop-2s 7-sg-all-outbound; do
  rsync -a /work/wt-deploy/deploy/infra/ /tmp/mut/repo/deploy/infra/
  python3 /tmp/mut/mutate.py $m || { echo "$m: mutate failed"; continue; }
  gofmt -w infra/*.go
  nice -n 10 go test -count=1 ./infra/ > /tmp/mut/$m.log 2>&1
  echo "$m rc=$? failing: $(grep -oE '^--- FAIL: \S+' /tmp/mut/$m.log | sed 's/--- FAIL: //' | tr '\n' ' ')" >> /tmp/mut/summary.txt
done
rsync -a /work/wt-deploy/deploy/infra/ /tmp/mut/repo/deploy/infra/
echo done >> /tmp/mut/summary.txt
