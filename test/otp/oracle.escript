#!/usr/bin/env escript
%% The Erlang/OTP side of the supervision differential test (test/otp/supervision-otp.test.ts).
%%
%%   escript oracle.escript SCENARIOS_FILE
%%
%% SCENARIOS_FILE holds one term per scenario, as file:consult/1 reads them:
%%
%%   {scenario, Id, Root, Steps}.
%%   Node  = {worker, Name, Restart, FailStarts}
%%         | {sup, Name, Restart, Strategy, Intensity, PeriodSeconds, [Node]}
%%         | {dyn, Name, Restart, Intensity, PeriodSeconds, ChildRestart}   (simple_one_for_one)
%%   Steps = [{crash, Name} | {exit, Name} | {start, DynName, Name, FailStarts} | {wait, Seconds}]
%%
%% Every scenario runs on a real `supervisor` tree whose workers are `gen_server`s that trap exits and
%% report `init` and `terminate` to one logging process per scenario. All scenarios run at once, so
%% the whole batch takes about as long as its longest scenario. Time is real: a scenario's steps
%% happen at whole seconds after its start second (`wait` moves to a later second), which is
%% the resolution of OTP's restart window (erlang:monotonic_time(second)). A scenario whose steps
%% overran their second is reported as `timing` and run again by the caller. Scenarios begin in
%% groups of ?PER_SECOND, a second apart.
%%
%% Output, one line per scenario in input order: `Id<TAB>token token ...`, or `Id<TAB>timing`.
%% Tokens: `crash:N` `exit:N` `start:N` `wait:S` `stop:root` (the steps), `+N` (init ran),
%% `+N!` (init failed), `-N` (terminate, stopped by its supervisor), `-N!` (terminate after its own
%% crash or exit), `skip` (the step's target was not running), `X` (the root supervisor is gone).
-mode(compile).
-define(PER_SECOND, 200).
-export([init/1, start_dynamic/3, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

main([File]) ->
    %% Supervisor and crash reports would go to standard_io, which carries the traces.
    ok = logger:set_primary_config(level, none),
    {ok, Scenarios} = file:consult(File),
    T0 = next_second(),
    Self = self(),
    Indexed = lists:zip(lists:seq(0, length(Scenarios) - 1), Scenarios),
    %% At most ?PER_SECOND scenarios begin in the same second, so that a big batch does not overrun it.
    _ = [
        spawn(fun() -> Self ! {done, Id, run(S, T0 + I div ?PER_SECOND)} end)
     || {I, {scenario, Id, _, _} = S} <- Indexed
    ],
    Results = [receive {done, Id, Result} -> {Id, Result} end || {scenario, Id, _, _} <- Scenarios],
    lists:foreach(fun print/1, Results),
    halt(0);
main(_) ->
    io:format(standard_error, "usage: oracle.escript SCENARIOS_FILE~n", []),
    halt(1).

print({Id, timing}) ->
    io:format("~s\ttiming~n", [Id]);
print({Id, Tokens}) ->
    io:format("~s\t~s~n", [Id, lists:join(" ", Tokens)]).

%% ---- One scenario ----

run({scenario, _Id, Root, Steps}, T0) ->
    process_flag(trap_exit, true),
    Log = spawn_link(fun() -> log_loop(#{events => [], pids => #{}, parents => #{}, starts => #{}}) end),
    wait_until(T0),
    State0 = #{log => Log, t0 => T0, tick => 0, ok => true, root => undefined},
    State1 =
        case supervisor:start_link(?MODULE, erlang:append_element(Root, Log)) of
            {ok, Pid} ->
                State0#{root := Pid};
            {error, _} ->
                flush_exits(),
                log(Log, <<"X">>),
                State0
        end,
    State2 = on_time(State1),
    State3 = steps(Steps, State2),
    case State3 of
        #{root := undefined} ->
            ok;
        #{root := RootPid} ->
            log(Log, <<"stop:root">>),
            stop(RootPid)
    end,
    case State3 of
        #{ok := false} -> timing;
        _ -> call(Log, events)
    end.

steps([], State) ->
    State;
steps(_, #{root := undefined} = State) ->
    State;
steps([Step | Rest], State) ->
    steps(Rest, on_time(step(Step, State))).

step({wait, Seconds}, #{log := Log, tick := Tick, t0 := T0} = State) ->
    log(Log, iolist_to_binary(io_lib:format("wait:~b", [Seconds]))),
    wait_until(T0 + Tick + Seconds),
    State#{tick := Tick + Seconds};
step({Kind, Name}, #{log := Log} = State) when Kind =:= crash; Kind =:= exit ->
    log(Log, <<(atom_to_binary(Kind))/binary, ":", Name/binary>>),
    case running(Name, State) of
        undefined ->
            log(Log, <<"skip">>),
            State;
        Pid ->
            Monitor = monitor(process, Pid),
            gen_server:cast(Pid, Kind),
            receive {'DOWN', Monitor, process, Pid, _} -> ok end,
            settle(Pid, State)
    end;
step({start, Dyn, Name, FailStarts}, #{log := Log} = State) ->
    log(Log, <<"start:", Name/binary>>),
    case running(Dyn, State) of
        undefined ->
            log(Log, <<"skip">>),
            State;
        Pid ->
            %% A failed start is an {error, _} reply; the worker logged it.
            _ = supervisor:start_child(Pid, [Name, FailStarts]),
            State
    end.

%% Waits until the supervisor of the process `Dead` has handled its exit, and so on up while
%% supervisors give up. A supervisor has handled a child's exit once it no longer lists the old pid
%% and restarts nothing: it answers which_children only after the whole restart (a group's included).
%% The root's supervisor is this process.
settle(Dead, #{log := Log} = State) ->
    Self = self(),
    case call(Log, {parent, Dead}) of
        Self ->
            flush_exits(),
            log(Log, <<"X">>),
            State#{root := undefined};
        Sup ->
            case handled(Sup, Dead) of
                true -> State;
                false -> settle(Sup, State)
            end
    end.

handled(Sup, Dead) ->
    case catch supervisor:which_children(Sup) of
        {'EXIT', _} ->
            false;
        Children ->
            case lists:any(fun({_, P, _, _}) -> P =:= Dead orelse P =:= restarting end, Children) of
                true ->
                    receive after 1 -> ok end,
                    handled(Sup, Dead);
                false ->
                    true
            end
    end.

running(Name, #{log := Log}) ->
    case call(Log, {pid, Name}) of
        Pid when is_pid(Pid) ->
            case is_process_alive(Pid) of
                true -> Pid;
                false -> undefined
            end;
        undefined ->
            undefined
    end.

stop(Pid) ->
    Monitor = monitor(process, Pid),
    exit(Pid, shutdown),
    receive {'DOWN', Monitor, process, Pid, _} -> ok end,
    flush_exits().

flush_exits() ->
    receive {'EXIT', _, _} -> flush_exits() after 0 -> ok end.

%% ---- Time: whole seconds after T0 ----

next_second() ->
    Next = erlang:monotonic_time(second) + 1,
    wait_until(Next),
    Next.

wait_until(Second) ->
    case erlang:monotonic_time(second) >= Second of
        true ->
            ok;
        false ->
            receive after max(1, Second * 1000 - erlang:monotonic_time(millisecond)) -> ok end,
            wait_until(Second)
    end.

%% A step that ran into the next second would see a different restart window than Troupe's.
on_time(#{t0 := T0, tick := Tick} = State) ->
    case erlang:monotonic_time(second) =:= T0 + Tick of
        true -> State;
        false -> State#{ok := false}
    end.

%% ---- The logging process: events in order, the current pid of every name, the supervisor of
%% every pid, start counts ----

log_loop(#{events := Events, pids := Pids, parents := Parents, starts := Starts} = S) ->
    receive
        {call, From, Ref, {log, Event}} ->
            From ! {Ref, ok},
            log_loop(S#{events := [Event | Events]});
        {call, From, Ref, {init, Name, Pid, Parent, FailStarts}} ->
            N = maps:get(Name, Starts, 0) + 1,
            Fails = lists:member(N, FailStarts),
            Event =
                case Fails of
                    true -> <<"+", Name/binary, "!">>;
                    false -> <<"+", Name/binary>>
                end,
            %% A worker whose init failed may not have exited yet when its start returns: it is not running.
            Running =
                case Fails of
                    true -> maps:remove(Name, Pids);
                    false -> Pids#{Name => Pid}
                end,
            From ! {Ref, Fails},
            log_loop(S#{
                events := [Event | Events],
                pids := Running,
                parents := Parents#{Pid => Parent},
                starts := Starts#{Name => N}
            });
        {call, From, Ref, {register, Name, Pid, Parent}} ->
            From ! {Ref, ok},
            log_loop(S#{pids := Pids#{Name => Pid}, parents := Parents#{Pid => Parent}});
        {call, From, Ref, {pid, Name}} ->
            From ! {Ref, maps:get(Name, Pids, undefined)},
            log_loop(S);
        {call, From, Ref, {parent, Pid}} ->
            From ! {Ref, maps:get(Pid, Parents)},
            log_loop(S);
        {call, From, Ref, events} ->
            From ! {Ref, lists:reverse(Events)},
            log_loop(S)
    end.

call(Log, Request) ->
    Ref = make_ref(),
    Log ! {call, self(), Ref, Request},
    receive {Ref, Reply} -> Reply end.

log(Log, Event) ->
    ok = call(Log, {log, Event}).

%% ---- Callbacks: this module is both the supervisors' and the workers' callback module ----

init({worker, Name, FailStarts, Log}) ->
    process_flag(trap_exit, true),
    case call(Log, {init, Name, self(), parent(), FailStarts}) of
        true -> {stop, start_failed};
        false -> {ok, {Name, Log}}
    end;
init({sup, Name, _Restart, Strategy, Intensity, Period, Children, Log}) ->
    call(Log, {register, Name, self(), parent()}),
    Flags = #{strategy => Strategy, intensity => Intensity, period => Period},
    {ok, {Flags, [child_spec(Child, Log) || Child <- Children]}};
init({dyn, Name, _Restart, Intensity, Period, ChildRestart, Log}) ->
    call(Log, {register, Name, self(), parent()}),
    Flags = #{strategy => simple_one_for_one, intensity => Intensity, period => Period},
    Spec = #{
        id => Name,
        start => {?MODULE, start_dynamic, [Log]},
        restart => ChildRestart,
        shutdown => 5000,
        type => worker
    },
    {ok, {Flags, [Spec]}}.

%% The process that started this one: its supervisor (proc_lib puts it first in '$ancestors').
parent() ->
    hd(get('$ancestors')).

child_spec({worker, Name, Restart, FailStarts}, Log) ->
    #{
        id => Name,
        start => {gen_server, start_link, [?MODULE, {worker, Name, FailStarts, Log}, []]},
        restart => Restart,
        shutdown => 5000,
        type => worker
    };
child_spec(Sup, Log) ->
    #{
        id => element(2, Sup),
        start => {supervisor, start_link, [?MODULE, erlang:append_element(Sup, Log)]},
        restart => element(3, Sup),
        shutdown => infinity,
        type => supervisor
    }.

start_dynamic(Log, Name, FailStarts) ->
    gen_server:start_link(?MODULE, {worker, Name, FailStarts, Log}, []).

handle_call(_Request, _From, State) ->
    {reply, ok, State}.

handle_cast(crash, _State) ->
    erlang:error(injected_crash);
handle_cast(exit, State) ->
    {stop, normal, State}.

handle_info(_Message, State) ->
    {noreply, State}.

terminate(shutdown, {Name, Log}) ->
    log(Log, <<"-", Name/binary>>);
terminate(_Reason, {Name, Log}) ->
    log(Log, <<"-", Name/binary, "!">>).
