// Everything the app needs inside the Azure ML workspace (new or existing), deployed into the
// workspace's resource group: the GPU compute cluster, the datastore for the app's `training` container,
// the app identity's roles on the workspace, and the Event Grid system topic for job events.
param workspaceName string
// A parameter, not workspace.location: of an `existing` resource only id, name, type and apiVersion are known
// when the deployment starts, and a resource's location must be (Bicep BCP120; tests/infra/bicep_constants.py).
@description('Region of the workspace: its compute cluster and system topic must be in the same region.')
param location string
param tags object = {}
@description('Principal id of the app identity (AzureML Data Scientist + Monitoring Reader on the workspace).')
param appPrincipalId string
param trainingStorageAccountName string
param trainingContainerName string
param datastoreName string
param createComputeCluster bool
param computeClusterName string
param computeVmSize string
@minValue(1)
param computeMaxNodes int
@description('Minutes an idle node is kept before the cluster scales back to zero.')
param computeIdleMinutes int = 10
param systemTopicName string

// Built-in role definition ids (stable across tenants).
var azureMLDataScientist = 'f6c7c914-8db3-469d-8ca1-694a8f32e121'
var monitoringReader = '43d0d8ad-25c7-4714-9337-8ba259a9fe05'

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-10-01' existing = {
  name: workspaceName
}

// Jobs, models, online endpoints and deployments, endpoint keys, scoring: everything the app does in the
// workspace, and nothing that creates compute or changes the workspace itself.
resource dataScientist 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, appPrincipalId, azureMLDataScientist)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', azureMLDataScientist)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The idle sweeper reads online endpoint request metrics (Azure Monitor) below the workspace.
resource metricsReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, appPrincipalId, monitoringReader)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringReader)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Scales to zero nodes when idle: a GPU cluster bills only while a job runs (plus computeIdleMinutes).
resource cluster 'Microsoft.MachineLearningServices/workspaces/computes@2024-10-01' = if (createComputeCluster) {
  parent: workspace
  name: computeClusterName
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    computeType: 'AmlCompute'
    disableLocalAuth: true
    properties: {
      vmSize: computeVmSize
      vmPriority: 'Dedicated'
      osType: 'Linux'
      remoteLoginPortPublicAccess: 'Disabled'
      scaleSettings: {
        minNodeCount: 0
        maxNodeCount: computeMaxNodes
        nodeIdleTimeBeforeScaleDown: 'PT${computeIdleMinutes}M'
      }
    }
  }
}

// Identity-based datastore (no account key stored in the workspace): pipeline inputs reference prepared
// data as azureml://datastores/<name>/paths/datasets/<model>/<dataset_id>/train.jsonl.
resource datastore 'Microsoft.MachineLearningServices/workspaces/datastores@2024-10-01' = {
  parent: workspace
  name: datastoreName
  properties: {
    datastoreType: 'AzureBlob'
    description: 'autotune prepared datasets (identity-based access)'
    accountName: trainingStorageAccountName
    containerName: trainingContainerName
    endpoint: environment().suffixes.storage
    protocol: 'https'
    credentials: {
      credentialsType: 'None'
    }
    serviceDataAccessAuthIdentity: 'WorkspaceSystemAssignedIdentity'
  }
}

// RunCompleted / RunStatusChanged events of this workspace drive `on_ml_job_event`; the subscription is
// created after the code is deployed (it needs the eventgrid_extension system key): infra/hooks/.
resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: systemTopicName
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: workspace.id
    topicType: 'Microsoft.MachineLearningServices.Workspaces'
  }
}

output workspacePrincipalId string = workspace.identity.principalId
// `cluster` is conditional: null when no cluster is created, so read it null-safely (Bicep BCP318).
output computePrincipalId string = cluster.?identity.?principalId ?? ''
output systemTopicName string = systemTopic.name
output systemTopicPrincipalId string = systemTopic.identity.principalId
