//! `persistentVolumeClaimRetentionPolicy`: claims go with the StatefulSet and with scaled
//! away pods under `Delete`, and stay under `Retain`.

use kube::api::DeleteParams;
use serde_json::{Value, json};

use crate::{
    SetSpec, claim, create_set, eventually, hold, is_terminating, patch_set, pod, pod_names, sets,
    settled, start, uid,
};

fn spec(retention: Option<(&'static str, &'static str)>) -> SetSpec {
    SetSpec {
        replicas: 3,
        parallel: true,
        on_delete: true,
        retention,
    }
}

fn owners(claim: &Value) -> Vec<(String, String)> {
    claim["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            assert!(
                r.get("controller").is_none_or(|c| c == false),
                "owners are not controllers: {r}"
            );
            (
                r["kind"].as_str().unwrap_or_default().to_owned(),
                r["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn claims_exist(server: &weir_apiserver_double::ApiServer, ordinals: &[i32]) -> bool {
    ordinals
        .iter()
        .all(|o| claim(server, &format!("data-web-{o}")).is_some())
}

#[tokio::test]
async fn delete_policies_remove_claims_of_scaled_away_pods_once_gone_and_with_the_set()
-> anyhow::Result<()> {
    let (server, _controllers, client) = start().await;
    let set = create_set(&client, spec(Some(("Delete", "Delete")))).await?;
    eventually("three claims", || claims_exist(&server, &[0, 1, 2])).await;
    for o in 0..3 {
        let c = claim(&server, &format!("data-web-{o}")).unwrap_or_default();
        assert_eq!(owners(&c), [("StatefulSet".to_owned(), "web".to_owned())]);
        assert_eq!(
            c["metadata"]["ownerReferences"][0]["uid"],
            json!(set.metadata.uid)
        );
    }

    // The scaled-away pod is held by a finalizer: its claim waits for it, owned by it.
    eventually("three pods", || pod_names(&server, "web-").len() == 3).await;
    hold(&client, "web-2", true).await?;
    patch_set(&client, json!({"replicas": 2})).await?;
    eventually("web-2 terminating", || {
        pod(&server, "web-2").is_some_and(|p| is_terminating(&p))
    })
    .await;
    eventually("data-web-2 owned by its pod", || {
        claim(&server, "data-web-2")
            .is_some_and(|c| owners(&c) == [("Pod".to_owned(), "web-2".to_owned())])
    })
    .await;
    let web2 = pod(&server, "web-2").unwrap_or_default();
    assert_eq!(
        claim(&server, "data-web-2").unwrap_or_default()["metadata"]["ownerReferences"][0]["uid"],
        uid(&web2).as_str()
    );
    hold(&client, "web-2", false).await?;
    eventually("web-2 and its claim gone", || {
        pod(&server, "web-2").is_none() && claim(&server, "data-web-2").is_none()
    })
    .await;
    assert!(claims_exist(&server, &[0, 1]), "claims in range stay");

    sets(&client)
        .delete("web", &DeleteParams::default())
        .await?;
    eventually("every pod and claim gone with the set", || {
        pod_names(&server, "web-").is_empty()
            && server.objects("", "persistentvolumeclaims").is_empty()
    })
    .await;
    Ok(())
}

#[tokio::test]
async fn retain_policies_keep_claims_on_scale_down_and_after_the_set_is_deleted()
-> anyhow::Result<()> {
    for retention in [None, Some(("Retain", "Retain"))] {
        let (server, _controllers, client) = start().await;
        create_set(&client, spec(retention)).await?;
        eventually("three bound claims", || claims_exist(&server, &[0, 1, 2])).await;
        patch_set(&client, json!({"replicas": 1})).await?;
        eventually("one pod left", || pod_names(&server, "web-") == ["web-0"]).await;
        settled(&server).await;
        assert!(
            claims_exist(&server, &[0, 1, 2]),
            "{retention:?}: scale-down keeps claims"
        );

        sets(&client)
            .delete("web", &DeleteParams::default())
            .await?;
        eventually("the pods gone with the set", || {
            pod_names(&server, "web-").is_empty()
        })
        .await;
        assert!(
            claims_exist(&server, &[0, 1, 2]),
            "{retention:?}: deleting the set keeps claims"
        );
        for o in 0..3 {
            let c = claim(&server, &format!("data-web-{o}")).unwrap_or_default();
            assert!(owners(&c).is_empty(), "{retention:?}: {c}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn delete_with_set_but_retain_on_scale_keeps_scaled_claims_until_the_set_goes()
-> anyhow::Result<()> {
    let (server, _controllers, client) = start().await;
    create_set(&client, spec(Some(("Delete", "Retain")))).await?;
    eventually("three claims", || claims_exist(&server, &[0, 1, 2])).await;
    patch_set(&client, json!({"replicas": 1})).await?;
    eventually("one pod left", || pod_names(&server, "web-") == ["web-0"]).await;
    settled(&server).await;
    assert!(
        claims_exist(&server, &[0, 1, 2]),
        "whenScaled: Retain keeps them"
    );
    let scaled = claim(&server, "data-web-2").unwrap_or_default();
    assert_eq!(
        owners(&scaled),
        [("StatefulSet".to_owned(), "web".to_owned())]
    );

    sets(&client)
        .delete("web", &DeleteParams::default())
        .await?;
    eventually("every claim gone with the set", || {
        server.objects("", "persistentvolumeclaims").is_empty()
    })
    .await;
    Ok(())
}
