"""Verification and identification

Enrol a person from one picture, then verify a claimed identity (1:1) or find who someone is (1:N).
"""
import numpy as np
import plotly.graph_objects as go
import streamlit as st

from dml_core.toys.identity import enrol, identify, identity_demo, make_people, verification_rates, verification_roc
from pages import _learn_common as ui


@st.cache_data(max_entries=8, show_spinner="Drawing the people…")
def people(seed: int):
    return make_people(seed)


@st.cache_data(max_entries=32, show_spinner="Training the embedding on the CPU…")
def demo(seed: int, steps: int):
    return identity_demo(seed=seed, steps=steps, people=people(seed))


ui.header("Verification and identification",
          "Face-recognition style: one picture to enrol, a distance threshold to decide.")

# Two formulas a row: three in a row cut the rates and the identification rule short.
verify, identify_rule = st.columns(2, gap="medium")
verify.latex(r"\text{accept} \iff d\bigl(f(q),\, f(x_{\text{enrolled}})\bigr) \le t")
identify_rule.latex(r"\hat{k} = \arg\min_k d\bigl(f(q), f(x_k)\bigr),\; \text{unknown if } d > t")
far, frr = st.columns(2, gap="medium")
far.latex(r"\mathrm{FAR}(t) = P(d \le t \mid \text{impostor})")
frr.latex(r"\mathrm{FRR}(t) = P(d > t \mid \text{genuine})")
st.caption("People: the pose task's figures, where a person id fixes body shape and outfit while pose, camera, framing "
           "and lighting change. f = an MLP on colour histograms, trained with the triplet loss on *binary* labels "
           "(same person or not) over 60 persons; everyone below is a person it never saw.")

controls = st.columns([1.3, 1.7, 1], vertical_alignment="bottom")
steps = controls[0].select_slider("Training steps", [0, 100, 200, 300, 400], value=300, key="l6_steps",
                                  help="0 = an untrained network: compare its ROC.")
with controls[2]:
    seed = ui.seed_input("l6_seed")
base = demo(seed, steps)
unknown = [int(p) for p in dict.fromkeys(base.test.persons.tolist()) if p not in base.enrolled_persons]
with controls[1]:
    new_person = st.selectbox("Enrol a new person from one picture", ["nobody"] + unknown, key=f"l6_new_{seed}",
                              format_func=lambda p: p if p == "nobody" else f"person {p}")

untrained_base = demo(seed, 0)
current, untrained_current = base, untrained_base
if new_person != "nobody":
    picture = st.radio("Enrolment picture", list(range(6)), horizontal=True, key=f"l6_pic_{seed}_{new_person}",
                       format_func=lambda k: f"#{k + 1}")
    current = enrol(base, int(new_person), int(picture))
    untrained_current = enrol(untrained_base, int(new_person), int(picture))

st.markdown("**Enrolled persons** (one picture each; the newly enrolled one last)")
gallery = st.columns(len(current.enrolled_persons))
for col, person, index in zip(gallery, current.enrolled_persons, current.template_index):
    col.image(ui.rgb_image(current.test.images[index], scale=3), caption=f"person {person}")

roc = verification_roc(current)
untrained = verification_roc(untrained_current) if steps else roc
eer_index = int(np.argmin(np.abs(roc["far"] - roc["frr"])))
default_t = float(roc["thresholds"][max(eer_index, 1)])
top = float(np.round(np.concatenate([current.genuine, current.impostor]).max() * 1.02, 3))
threshold = st.slider("Threshold t", 0.0, top, float(np.round(min(default_t, top), 3)), step=top / 200,
                      key=f"l6_t_{seed}_{steps}", format="%.3f", help="Starts at the equal-error threshold (FAR = FRR).")
rates_now = verification_rates(current, threshold)

st.subheader("Verification (1:1)")
metrics = st.columns(5)
metrics[0].metric("ROC AUC", f"{roc['auc']:.3f}", delta=f"{roc['auc'] - untrained['auc']:+.3f} vs untrained" if steps else None,
                  help="P(a genuine claim is nearer than an impostor claim). 0.5 = chance.")
metrics[1].metric("Equal error rate", f"{roc['eer']:.1%}")
metrics[2].metric("False accepts at t", f"{rates_now['far']:.1%}", help=f"{rates_now['false_accepts']} impostor claims accepted")
metrics[3].metric("False rejects at t", f"{rates_now['frr']:.1%}", help=f"{rates_now['false_rejects']} genuine claims rejected")
metrics[4].metric("Claims", f"{len(current.genuine)} + {len(current.impostor)}", help="genuine + impostor: every query "
                  "picture against every enrolled person's template")

roc_col, rate_col = st.columns(2, gap="large")
with roc_col:
    fig = go.Figure()
    if steps:
        fig.add_trace(go.Scatter(x=untrained["far"], y=untrained["tpr"], mode="lines", name=f"untrained (AUC {untrained['auc']:.2f})",
                                 line=dict(color=ui.COLOURS["euclidean"], dash="dash", width=2)))
    fig.add_trace(go.Scatter(x=roc["far"], y=roc["tpr"], mode="lines", name=f"trained (AUC {roc['auc']:.2f})",
                             line=dict(color=ui.COLOURS["learned"], width=2.5)))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line=dict(color="#d1d5db", dash="dot")))
    fig.add_trace(go.Scatter(x=[rates_now["far"]], y=[1 - rates_now["frr"]], mode="markers", name="threshold t",
                             marker=dict(size=12, color="#111827", symbol="circle-open", line=dict(width=3))))
    fig.update_xaxes(title="false accept rate", range=[0, 1])
    fig.update_yaxes(title="genuine accept rate (1 − FRR)", range=[0, 1.02])
    ui.plot(ui.style(fig, height=360, title="ROC"), key="l6_roc")
with rate_col:
    fig = go.Figure()
    t = roc["thresholds"][1:]
    fig.add_trace(go.Scatter(x=t, y=roc["far"][1:], mode="lines", name="false accept rate",
                             line=dict(color=ui.COLOURS["impostor"], width=2.5)))
    fig.add_trace(go.Scatter(x=t, y=roc["frr"][1:], mode="lines", name="false reject rate",
                             line=dict(color=ui.COLOURS["genuine"], width=2.5)))
    fig.add_vline(x=threshold, line=dict(color="#111827", width=2), annotation_text="t")
    fig.update_xaxes(title="threshold t (embedding distance)")
    fig.update_yaxes(title="rate", range=[0, 1.02])
    ui.plot(ui.style(fig, height=360, title="FAR and FRR against the threshold"), key="l6_rates")

st.subheader("Identification (1:N, open set)")
found = identify(current, threshold)
query_col, answer_col = st.columns([1, 2.2], gap="large")
with query_col:
    n_queries = len(current.query_index)
    k = st.slider("Query picture", 0, n_queries - 1, 0, key=f"l6_query_{seed}")
    q = int(current.query_index[k])
    st.image(ui.rgb_image(current.test.images[q], scale=5))
    truth = int(current.test.persons[q])
    status = "enrolled" if truth in current.enrolled_persons else "never enrolled"
    st.caption(f"truly person {truth} ({status})")
with answer_col:
    d = np.linalg.norm(current.embeddings[current.template_index] - current.embeddings[q], axis=1)
    order = np.argsort(d)[:4]
    nearest = int(current.enrolled_persons[order[0]])
    if d[order[0]] <= threshold:
        verdict = f"identified as **person {nearest}**"
        correct = nearest == truth
    else:
        verdict = "**unknown** (even the nearest template is farther than t)"
        correct = truth not in current.enrolled_persons
    st.markdown(f"{'✅' if correct else '❌'} {verdict}")
    cols = st.columns(4)
    for col, idx in zip(cols, order):
        person = int(current.enrolled_persons[idx])
        col.image(ui.rgb_image(current.test.images[current.template_index[idx]], scale=3),
                  caption=f"person {person} · d = {d[idx]:.3f}")
    m = st.columns(2)
    m[0].metric("Rank-1 accuracy", f"{found['rank1']:.1%}",
                help="Enrolled persons' queries whose nearest template is the right person (threshold ignored).")
    m[1].metric("Strangers answered 'unknown' at t", f"{found['unknown_rejected']:.1%}",
                help="Queries of persons never enrolled whose nearest template is farther than t.")

ui.takeaway([
    "Trained only with same / not-same labels, the embedding generalises to new people: one picture is enough to enrol, "
    "and the ROC sits far above chance (and above the untrained network's).",
    "Verification is one threshold on one distance: lower t and false accepts fall while false rejects rise; "
    "the equal-error rate is where they meet.",
    "Identification compares against every template; with a threshold it can also say *unknown*, "
    "which matters as soon as strangers can walk up.",
])
