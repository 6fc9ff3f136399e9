%% SPDX-License-Identifier: MIT
%% Erlang/OTP versions of troupe's distribution benchmarks (tools/bench/
%% tdist.c), for tools/bench/dist.sh: two distributed Erlang nodes on the
%% same machine. Node B only serves; node A spawns the workload's remote
%% process on B, drives it and halts both. Build and run:
%%
%%   erlc -o build/bench-erl tools/bench/erl/tdist.erl
%%   erl -noshell -name b@127.0.0.1 -setcookie C +S T:T \
%%       -pa build/bench-erl -run tdist peer &
%%   erl -noshell -name a@127.0.0.1 -setcookie C +S T:T \
%%       -pa build/bench-erl -run tdist main WORKLOAD OPS b@127.0.0.1
%%
%%   pingpong  OPS round trips of an 8-byte binary with an echo process on
%%             B, one in flight, after 1000 untimed ones; the request is
%%             {FromPid, Payload} (Erlang messages carry no sender), the
%%             reply the payload alone
%%   stream    OPS 8-byte binaries sent with plain `!` to a counter on B,
%%             which acks every ?WINDOW messages; the sender waits for the
%%             ack of the window before the one it has just sent, so at
%%             most two windows are in flight and B's mailbox stays small
%%   spawn     OPS processes spawned on B with spawn/4 (which returns once
%%             B has answered with the pid), one at a time, after 100
%%             untimed ones; they wait until the end
%%
%% main/1 prints, as tdist does,
%%
%%   RESULT erlang WORKLOAD THREADS OPS SECONDS PEAK_RSS_KB 0
%%   LATENCY MEAN_US MEDIAN_US P99_US          (pingpong only)
%%
%% and halts both nodes. peer/0 halts node B when node A goes away, or
%% after 60 s if no node ever connects.
-module(tdist).
-export([main/1, peer/0, echo/0, counter/3, idle/0]).

-define(WARMUP, 1000).
-define(WINDOW, 4096).

main([Workload, Ops, Peer]) ->
    W = to_list(Workload),
    N = list_to_integer(to_list(Ops)),
    B = list_to_atom(to_list(Peer)),
    connect(B, 200),
    Top = self(),
    {Pid, Ref} = spawn_monitor(fun() -> Top ! {self(), measure(W, N, B)} end),
    receive
        {Pid, {Secs, Latency}} ->
            io:format("RESULT erlang ~s ~B ~B ~.6f ~B 0~n",
                      [W, erlang:system_info(schedulers_online), N, Secs,
                       status_kb("VmHWM:")]),
            print_latency(Latency),
            stop(B, 0);
        {'DOWN', Ref, process, Pid, Why} ->
            io:format(standard_error, "tdist: ~s failed: ~p~n", [W, Why]),
            stop(B, 1)
    end;
main(_) ->
    io:format(standard_error, "usage: tdist WORKLOAD OPS NODE~n", []),
    erlang:halt(2).

peer() ->
    ok = net_kernel:monitor_nodes(true),
    receive
        {nodeup, A} -> peer_wait(A)
    after 60000 ->
        erlang:halt(1)
    end.

peer_wait(A) ->
    receive
        {nodedown, A} -> erlang:halt(0);
        _ -> peer_wait(A)
    end.

to_list(A) when is_atom(A) -> atom_to_list(A);
to_list(L) when is_list(L) -> L.

%% Node B boots in parallel with us: retry for up to Tries * 50 ms.
connect(B, 0) ->
    io:format(standard_error, "tdist: cannot reach ~s~n", [B]),
    erlang:halt(1);
connect(B, Tries) ->
    case net_kernel:connect_node(B) of
        true -> ok;
        _ -> receive after 50 -> connect(B, Tries - 1) end
    end.

%% Halts B (its peer/0 sees us go down) and then this node.
stop(B, Status) ->
    erlang:disconnect_node(B),
    erlang:halt(Status).

status_kb(Key) ->
    {ok, Bin} = file:read_file("/proc/self/status"),
    [Line | _] = [L || L <- string:split(binary_to_list(Bin), "\n", all),
                       lists:prefix(Key, L)],
    [_, Kb | _] = string:lexemes(Line, " \t"),
    list_to_integer(Kb).

now_ns() -> erlang:monotonic_time(nanosecond).

%% Returns {Seconds, Latencies in ns or none}.
measure("pingpong", Ops, B) -> pingpong(Ops, B);
measure("stream", Ops, B) -> stream(Ops, B);
measure("spawn", Ops, B) -> spawns(Ops, B);
measure(W, _, _) -> exit({unknown_workload, W}).

%% ---- pingpong ---------------------------------------------------------------

pingpong(Ops, B) ->
    Echo = spawn_link(B, ?MODULE, echo, []),
    ping(Echo, ?WARMUP, []),
    T0 = now_ns(),
    Lat = ping(Echo, Ops, []),
    {(now_ns() - T0) / 1.0e9, Lat}.

ping(_, 0, Acc) -> Acc;
ping(Echo, N, Acc) ->
    T = now_ns(),
    Echo ! {self(), <<N:64>>},
    receive <<N:64>> -> ok end,
    ping(Echo, N - 1, [now_ns() - T | Acc]).

echo() ->
    receive {From, Payload} -> From ! Payload, echo() end.

print_latency(none) -> ok;
print_latency(Lat) ->
    N = length(Lat),
    Sorted = lists:sort(Lat),
    io:format("LATENCY ~.2f ~.2f ~.2f~n",
              [lists:sum(Lat) / N / 1000, lists:nth(N div 2 + 1, Sorted) / 1000,
               lists:nth(N * 99 div 100 + 1, Sorted) / 1000]).

%% ---- spawn ----------------------------------------------------------------

spawns(Ops, B) ->
    spawn_n(B, 100),
    T0 = now_ns(),
    spawn_n(B, Ops),
    {(now_ns() - T0) / 1.0e9, none}.

spawn_n(_, 0) -> ok;
spawn_n(B, N) ->
    _ = spawn(B, ?MODULE, idle, []),
    spawn_n(B, N - 1).

idle() ->
    receive stop -> ok end.

%% ---- stream -----------------------------------------------------------------

stream(Ops, B) ->
    C = spawn_link(B, ?MODULE, counter, [self(), Ops, ?WINDOW]),
    T0 = now_ns(),
    produce(C, 0, Ops),
    receive
        {done, 0} -> {(now_ns() - T0) / 1.0e9, none};
        {done, Errors} -> exit({out_of_order, Errors})
    end.

%% After sending window K (messages up to Seq), wait for the ack of K - 1.
produce(_, Ops, Ops) -> ok;
produce(C, Seq, Ops) ->
    C ! <<Seq:64>>,
    Next = Seq + 1,
    case Next rem ?WINDOW of
        0 when Next > ?WINDOW ->
            Prev = Next div ?WINDOW - 1,
            receive {ack, Prev} -> ok end;
        _ -> ok
    end,
    produce(C, Next, Ops).

counter(From, Ops, Window) -> count(From, Ops, Window, 0, 0).

count(From, Ops, _, Ops, Errors) -> From ! {done, Errors};
count(From, Ops, Window, Next, Errors) ->
    receive
        <<Seq:64>> ->
            E = case Seq of Next -> Errors; _ -> Errors + 1 end,
            N = Next + 1,
            case N rem Window of
                0 -> From ! {ack, N div Window};
                _ -> ok
            end,
            count(From, Ops, Window, N, E)
    end.
