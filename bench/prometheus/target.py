# Kong-style ms histogram whose counts change once every 10 s (at :05, :15, …), so that two scrapers reading
# it at different moments see the same increments per period.
import time, random, os, math, sys
OUT = sys.argv[1]  # the file served as /metrics
LES=[5,10,25,50,100,250,500,1000,2500,5000]
b=[0]*len(LES); n=0; total=0.0
random.seed(11)
def write():
    lines=["# HELP kong_request_latency_ms Total latency incurred during requests","# TYPE kong_request_latency_ms histogram"]
    for le,c in zip(LES,b):
        lines.append(f'kong_request_latency_ms_bucket{{service="shop",route="orders",workspace="default",le="{le}"}} {c}')
    lines.append(f'kong_request_latency_ms_bucket{{service="shop",route="orders",workspace="default",le="+Inf"}} {n}')
    lines.append(f'kong_request_latency_ms_count{{service="shop",route="orders",workspace="default"}} {n}')
    lines.append(f'kong_request_latency_ms_sum{{service="shop",route="orders",workspace="default"}} {total:.3f}')
    open(OUT + ".tmp", "w").write("\n".join(lines)+"\n"); os.rename(OUT + ".tmp", OUT)
write()
while True:
    now=time.time(); nxt=math.floor((now-5)/10)*10+15; time.sleep(max(0,nxt-now))
    slow = random.random() < 0.2
    for _ in range(random.randint(300,700)):
        v=random.lognormvariate(math.log(40), 0.6) * (6 if slow and random.random()<0.3 else 1)
        n+=1; total+=v
        for i,le in enumerate(LES):
            if v<=le: b[i]+=1
    write()
