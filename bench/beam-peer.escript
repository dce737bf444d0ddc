#!/usr/bin/env escript
%%! +P 2000000
%% The Erlang/OTP peer of the kernel bench: the same workloads as Troupe's, run on the BEAM.
%%   escript bench/beam-peer.escript skynet <leaves>         -> ms
%%   escript bench/beam-peer.escript ring <actors> <passes>  -> passes/s
%%   escript bench/beam-peer.escript spawn-heap <n>          -> bytes per idle process
%%   escript bench/beam-peer.escript spawn-time <n>          -> us per process
%%   escript bench/beam-peer.escript tell <messages>         -> msg/s to one process
%%   escript bench/beam-peer.escript info                    -> the VM the numbers come from
%% Each workload prints one number on a line of its own. The module is compiled (`-mode(compile)`),
%% not interpreted, and runs on the VM's defaults: SMP, one scheduler per core (`info` says how many).
%% Skynet is the standard one: spawn, send to the parent, receive, sum; nothing else per process.
-mode(compile).

main(["skynet", Leaves]) -> out(skynet_ms(list_to_integer(Leaves)));
main(["ring", N, Passes]) -> out(ring(list_to_integer(N), list_to_integer(Passes)));
main(["spawn-heap", N]) -> out(spawn_heap(list_to_integer(N)));
main(["spawn-time", N]) -> out(spawn_time(list_to_integer(N)));
main(["tell", N]) -> out(tell(list_to_integer(N)));
main(["info"]) ->
    io:format("Erlang/OTP ~s (~p schedulers, ~s)~n", [
        erlang:system_info(otp_release),
        erlang:system_info(schedulers_online),
        case erlang:system_info(emu_flavor) of jit -> "JIT"; F -> atom_to_list(F) end
    ]);
main(_) -> io:format(standard_error, "usage: beam-peer.escript skynet|ring|spawn-heap|spawn-time|tell|info ...~n", []), halt(2).

out(X) -> io:format("~p~n", [X]).

now_us() -> erlang:monotonic_time(microsecond).

%% Skynet: a tree of processes, ten children each, down to `Leaves` leaves; each leaf answers its
%% number, each parent sums its children's and answers; the root gets the sum.
skynet_ms(Leaves) ->
    T0 = now_us(),
    Self = self(),
    spawn(fun() -> skynet(Self, 0, Leaves) end),
    receive {sum, _Sum} -> ok end,
    (now_us() - T0) / 1000.

skynet(Parent, Num, 1) -> Parent ! {sum, Num};
skynet(Parent, Num, Size) ->
    Child = Size div 10,
    Self = self(),
    [spawn(fun() -> skynet(Self, Num + I * Child, Child) end) || I <- lists:seq(0, 9)],
    Parent ! {sum, collect(10, 0)}.

collect(0, Sum) -> Sum;
collect(K, Sum) -> receive {sum, S} -> collect(K - 1, Sum + S) end.

%% Ring: N processes in a ring, a token passed from each to the next; `Passes` passes in all.
ring(N, Passes) ->
    Self = self(),
    Pids = [spawn(fun() -> receive {next, Next} -> ring_node(Next, Self) end end) || _ <- lists:seq(1, N)],
    [P ! {next, Q} || {P, Q} <- lists:zip(Pids, tl(Pids) ++ [hd(Pids)])],
    T0 = now_us(),
    hd(Pids) ! {token, Passes},
    receive done -> ok end,
    Us = now_us() - T0,
    [P ! stop || P <- Pids],
    Passes / (Us / 1000000).

ring_node(Next, Main) ->
    receive
        {token, 0} -> Main ! done, ring_node(Next, Main);
        {token, K} -> Next ! {token, K - 1}, ring_node(Next, Main);
        stop -> ok
    end.

%% Bytes per idle process (each blocked in receive), from the VM's process memory.
spawn_heap(N) ->
    erlang:garbage_collect(),
    Before = erlang:memory(processes),
    Pids = [spawn(fun idle/0) || _ <- lists:seq(1, N)],
    After = erlang:memory(processes),
    [P ! stop || P <- Pids],
    (After - Before) / N.

idle() -> receive stop -> ok end.

spawn_time(N) ->
    T0 = now_us(),
    Pids = [spawn(fun idle/0) || _ <- lists:seq(1, N)],
    Us = (now_us() - T0) / N,
    [P ! stop || P <- Pids],
    Us.

%% Messages to one counting process, then one request to see they were all handled.
tell(N) ->
    Counter = spawn(fun() -> counter(0) end),
    T0 = now_us(),
    send_n(Counter, N),
    Counter ! {get, self()},
    receive {count, N} -> ok end,
    N / ((now_us() - T0) / 1000000).

send_n(_, 0) -> ok;
send_n(P, K) -> P ! {add, K}, send_n(P, K - 1).

counter(C) ->
    receive
        {add, _} -> counter(C + 1);
        {get, From} -> From ! {count, C}
    end.
